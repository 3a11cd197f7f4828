"""QTI 1.2 as Canvas imports it: a zip of imsmanifest.xml and one assessment XML.

    questestinterop/assessment/section/item, each item with itemmetadata
    (question_type, points_possible), a presentation (response_lid/render_choice
    for choices, response_str/render_fib for numbers and sizes) and resprocessing
    that sets SCORE to 100 for the correct responses, and 0 with feedback naming the
    mistake for each wrong answer a known mistake gives (grader.quiz.diagnose).
The zip is byte-identical for the same quiz (fixed timestamps, fixed order).
"""

from __future__ import annotations

import html
import io
import re
import xml.etree.ElementTree as ET
import zipfile

from grader.quiz.diagnose import mistaken_keys
from grader.quiz.draw import DrawnQuestion, DrawnQuiz
from grader.quiz.export.gift import size_forms

QTI_NS = "http://www.imsglobal.org/xsd/ims_qtiasiv1p2"
CP_NS = "http://www.imsglobal.org/xsd/imsccv1p1/imscp_v1p1"
TYPES = {"choice": "multiple_choice_question", "truefalse": "true_false_question",
         "number": "numerical_question", "size": "short_answer_question"}


def ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def question_type(q: DrawnQuestion) -> str:
    if isinstance(q.key.value, bool):
        return TYPES["truefalse"]
    if isinstance(q.key.value, str):
        return TYPES["choice"]
    return TYPES["number"] if len(q.key.value) == 1 else TYPES["size"]


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _material(parent: ET.Element, text: str, html_text: bool = True) -> None:
    body = "<p>" + html.escape(text, quote=False).replace("\n", "<br/>") + "</p>" if html_text else text
    _sub(_sub(parent, "material"), "mattext", body, texttype="text/html" if html_text else "text/plain")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _presentation(item: ET.Element, q: DrawnQuestion) -> None:
    presentation = _sub(item, "presentation")
    _material(presentation, q.text)
    value = q.key.value
    if isinstance(value, (bool, str)):
        choice = _sub(_sub(presentation, "response_lid", ident="response1", rcardinality="Single"), "render_choice")
        for label_ident, option in _choices(q):
            _material(_sub(choice, "response_label", ident=label_ident), option, html_text=False)
    else:
        fib = _sub(_sub(presentation, "response_str", ident="response1", rcardinality="Single"), "render_fib",
                   **({"fibtype": "Decimal"} if len(value) == 1 else {}))
        _sub(fib, "response_label", ident="answer1", rshuffle="No")


def _choices(q: DrawnQuestion) -> list[tuple[str, str]]:
    if isinstance(q.key.value, bool):
        return [("true", "True"), ("false", "False")]
    return [(chr(97 + i), option) for i, option in enumerate(q.options)]


def _accept(conditions: ET.Element, q: DrawnQuestion, value=None) -> None:
    """The correct responses: the right choice, a number within the tolerance, or any accepted form of a size
    (`value`: another key, a mistaken one, matched the same way)."""
    value = q.key.value if value is None else value
    if isinstance(value, bool):
        _sub(conditions, "varequal", "true" if value else "false", respident="response1")
    elif isinstance(value, str):
        _sub(conditions, "varequal", value, respident="response1")
    elif len(value) == 1:
        either = _sub(conditions, "or")
        _sub(either, "varequal", _num(value[0]), respident="response1")
        bounds = _sub(either, "and")
        _sub(bounds, "vargte", _num(value[0] - q.key.tolerance), respident="response1")
        _sub(bounds, "varlte", _num(value[0] + q.key.tolerance), respident="response1")
    else:
        for form in size_forms(value):
            _sub(conditions, "varequal", form, respident="response1")


def _item(section: ET.Element, q: DrawnQuestion) -> None:
    item = _sub(section, "item", ident=ident(q.id), title=q.id)
    meta = _sub(_sub(item, "itemmetadata"), "qtimetadata")
    for label, entry in (("question_type", question_type(q)), ("points_possible", f"{q.points:g}")):
        field = _sub(meta, "qtimetadatafield")
        _sub(field, "fieldlabel", label)
        _sub(field, "fieldentry", entry)
    _presentation(item, q)
    processing = _sub(item, "resprocessing")
    _sub(_sub(processing, "outcomes"), "decvar", maxvalue="100", minvalue="0", varname="SCORE", vartype="Decimal")
    condition = _sub(processing, "respcondition", **{"continue": "No"})
    _accept(_sub(condition, "conditionvar"), q)
    _sub(condition, "setvar", "100", action="Set", varname="SCORE")
    feedback = "\n".join(list(q.key.working) + ([q.explanation] if q.explanation else []))
    if feedback:
        _sub(condition, "displayfeedback", feedbacktype="Response", linkrefid="general_fb")
    # a wrong answer a known mistake gives: no points, and feedback that names the mistake
    mistakes = mistaken_keys(q)
    for i, (value, _) in enumerate(mistakes, 1):
        wrong = _sub(processing, "respcondition", **{"continue": "No"})
        _accept(_sub(wrong, "conditionvar"), q, value)
        _sub(wrong, "setvar", "0", action="Set", varname="SCORE")
        _sub(wrong, "displayfeedback", feedbacktype="Response", linkrefid=f"mistake_{i}")
    if feedback:
        _material(_sub(_sub(item, "itemfeedback", ident="general_fb"), "flow_mat"), feedback)
    for i, (_, diagnosis) in enumerate(mistakes, 1):
        _material(_sub(_sub(item, "itemfeedback", ident=f"mistake_{i}", title=diagnosis.kind), "flow_mat"),
                  diagnosis.message + ("\n" + feedback if feedback else ""))


def assessment_xml(quiz: DrawnQuiz) -> bytes:
    root = ET.Element("questestinterop", xmlns=QTI_NS)
    assessment = _sub(root, "assessment", ident=ident(f"{quiz.quiz}-{quiz.student}"), title=quiz.title)
    meta = _sub(assessment, "qtimetadata")
    field = _sub(meta, "qtimetadatafield")
    _sub(field, "fieldlabel", "cc_maxattempts")
    _sub(field, "fieldentry", "1")
    section = _sub(assessment, "section", ident="root_section")
    for q in quiz.questions:
        _item(section, q)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def manifest_xml(quiz: DrawnQuiz, href: str) -> bytes:
    root = ET.Element("manifest", identifier=ident(f"manifest-{quiz.quiz}-{quiz.student}"), xmlns=CP_NS)
    metadata = _sub(root, "metadata")
    _sub(metadata, "schema", "IMS Content")
    _sub(metadata, "schemaversion", "1.1.3")
    _sub(root, "organizations")
    resources = _sub(root, "resources")
    resource = _sub(resources, "resource", identifier=ident(f"{quiz.quiz}-{quiz.student}"),
                    type="imsqti_xmlv1p2", href=href)
    _sub(resource, "file", href=href)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def render(quiz: DrawnQuiz, with_key: bool = True) -> bytes:
    name = ident(f"{quiz.quiz}-{quiz.student}")
    href = f"{name}/{name}.xml"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in (("imsmanifest.xml", manifest_xml(quiz, href)), (href, assessment_xml(quiz))):
            archive.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()
