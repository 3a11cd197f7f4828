"""Self-contained, printable HTML: inline CSS, no scripts, no links to load."""

from __future__ import annotations

from jinja2 import Environment

from grader.quiz.draw import DrawnQuiz

_PAGE = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string("""\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ quiz.title }} — {{ quiz.student }}</title>
<style>
body { font-family: Georgia, "Times New Roman", serif; max-width: 46em; margin: 2em auto; padding: 0 1em; line-height: 1.45; color: #111; }
header { border-bottom: 2px solid #111; margin-bottom: 1.5em; }
.meta { color: #444; font-size: 0.95em; }
.question { margin: 1.4em 0; page-break-inside: avoid; break-inside: avoid; }
.question h2 { font-size: 1.05em; margin: 0 0 0.4em; }
.points { font-weight: normal; color: #555; }
.qid { color: #777; font-size: 0.8em; margin: 0.2em 0 0; }
.text { white-space: pre-wrap; }
ol.options { list-style-type: lower-alpha; }
.blank { border-bottom: 1px solid #111; display: inline-block; min-width: 12em; height: 1.2em; }
.key { background: #eef6ee; border-left: 4px solid #2a7a2a; padding: 0.4em 0.8em; margin-top: 0.5em; }
.key pre { white-space: pre-wrap; margin: 0.3em 0; font-size: 0.9em; }
@media print { body { margin: 0; max-width: none; } .key { background: none; } a { color: inherit; } }
</style>
</head>
<body>
<header>
<h1>{{ quiz.title }}</h1>
<p class="meta">Quiz <code>{{ quiz.quiz }}</code> · student <code>{{ quiz.student }}</code> · {{ quiz.questions|length }} questions · {{ "%g"|format(quiz.max_score) }} points{% if with_key %} · <strong>answer key</strong>{% endif %}</p>
{% if quiz.description %}<p>{{ quiz.description }}</p>{% endif %}
{% if not with_key %}<p class="meta">Sizes as HxWxC (e.g. 195x195x32) or HxW, receptive fields as one number or HxW.</p>{% endif %}
</header>
{% for q in quiz.questions %}
<section class="question" id="{{ q.id }}">
<h2>{{ loop.index }}. {{ q.title }} <span class="points">({{ "%g"|format(q.points) }} point{{ "" if q.points == 1 else "s" }})</span></h2>
<div class="text">{{ q.text }}</div>
{% if q.options %}
<ol class="options">
{% for option in q.options %}<li>{{ option }}</li>
{% endfor %}
</ol>
{% elif q.true_false %}
<p>true / false</p>
{% endif %}
{% if with_key %}
<div class="key"><strong>Answer:</strong> {{ q.key.display }}
{% if q.key.working %}<pre>{{ q.key.working|join("\n") }}</pre>{% endif %}
{% if q.explanation %}<p>{{ q.explanation }}</p>{% endif %}
</div>
{% else %}
<p>Answer: <span class="blank"></span></p>
{% endif %}
<p class="qid">answer as <code>{{ q.id }}: ...</code></p>
</section>
{% endfor %}
</body>
</html>
""")  # noqa: E501 (the template's lines are the page's: the HTML reads best unbroken)


def render(quiz: DrawnQuiz, with_key: bool = False) -> str:
    return _PAGE.render(quiz=quiz, with_key=with_key)
