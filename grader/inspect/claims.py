"""What a notebook's saved outputs claim: parameter count, test accuracy, epochs.

Claims are kept to compare with what the grader measures; the score never
comes from them. Rules:

- **Lines as a terminal shows them.** Progress bars (tqdm, Keras) redraw a
  line with `\\r` (Keras also with `\\b`): only the text after the last `\\r`
  of a line counts, so a bar's intermediate values are not claims.
- **Parameters**: `Total params: 13,808` / `Trainable params: 13,808`
  (torchsummary, torchinfo, Keras), `Number of (trainable) parameters: N`,
  `Parameters: N` / `Params = N`, and the count before the word:
  `The model has 13,808 trainable parameters`. A cell whose code prints a
  count with no words around it (`print(sum(p.numel() for p in
  model.parameters()))`, a last line `sum(p.numel() ...)`, a variable that
  holds such a sum printed alone, `print(model.count_params())`) claims the
  number it printed on a line of its own, when it prints one such count and
  one such line; the count is trainable when the sum keeps `requires_grad`.
  The claim is the last trainable count printed (the notebook's final model),
  else the last total count; `params_kind` says which it is.
- **Test accuracy**, in percent (fractions up to 1 are scaled by 100):
  `Accuracy: 9941/10000 (99%)` is taken as 9941/10000 = 99.41, since the
  printed percentage is rounded; `Accuracy: 99.46`, `Accuracy=99.12`,
  `acc 0.99`, `val_acc: 0.9942`, `val_accuracy: 0.9942`. An accuracy counts
  as a test accuracy only when a label test / val(idation) / eval(uation)
  comes before it on its line with no "train" in between:
  `Test set: ... Accuracy: ...`, `val_acc`, a test loop's bar
  `Test: Accuracy=99.1`. An unlabelled accuracy is a training accuracy (the
  tqdm bar of the usual training loop, `Loss=0.05 Batch_id=468
  Accuracy=98.50`), and so is one labelled train.
  Also counted: a line that is only a number after a line naming test
  accuracy without one (`Test accuracy` / `0.994`), the Keras
  `print(score)` pair `[0.0301, 0.9942]` ([loss, accuracy]), and the PyTorch
  tutorial's `Accuracy of the network on the 10000 test images: 99 %`.
  `accuracy` is the best of them, `last_accuracy` the last printed.
- **Epochs**: the largest epoch number printed (`Epoch 3`, `EPOCH: 3`,
  `Epoch 3/15`), plus one when the numbering starts at 0 (`EPOCH: 0` ...
  `EPOCH: 14` is 15 epochs); when no epoch number is printed, the number of
  test accuracies printed (one evaluation per epoch).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from grader.facts import ClaimsFacts

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_REDRAWN_LINE = re.compile(r"[^\n]*\r[^\n]*")

# Whole-output regexes, matched against the lowercased text: a notebook may hold megabytes of
# per-batch logs, and a pattern that starts with a literal word is found by a fast scan, so each
# "not inside a word" check is a lookbehind placed after its word. [ \t] keeps a match on one line.
_NUMBER = r"(?:(?P<num>\d+)[ \t]*/[ \t]*(?P<den>\d+)|(?P<val>\d+(?:\.\d*)?(?:e[-+]?\d+)?|\.\d+)[ \t]*(?P<pct>%)?)"
_TEST_LABEL = r"(?:test(?<![a-z]test)|val(?<![a-z]val)(?!ue)|eval(?<![a-z]eval))"
_NO_TRAIN_UNTIL = r"(?:(?!(?<![a-z])train)[^\n])*?"  # more of the line, but no "train" label
_ACCURACY_WORD = r"(?<![a-z])acc(?:uracy)?(?![a-z])"
_TEST_ACCURACY = re.compile(
    rf"{_TEST_LABEL}{_NO_TRAIN_UNTIL}{_ACCURACY_WORD}"
    rf"(?:[ \t]*(?:[:=][ \t]*|is[ \t]+)?{_NUMBER}"  # Test set: ... Accuracy: 9941/10000, val_acc: 0.9942
    r"|[^\d\n]*\n(?:[ \t]*\n)*[ \t]*"
    r"(?P<next>\d+(?:\.\d*)?|\.\d+)[ \t]*(?P<next_pct>%)?[ \t]*$)",  # Test accuracy\n0.994
    re.M,
)
_TUTORIAL = re.compile(r"accuracy of the network on the \d+ test images[ \t]*:[ \t]*(?P<val>\d+(?:\.\d+)?)[ \t]*%")
_FLOAT = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?"
_SCORE_PAIR = re.compile(rf"^[ \t]*\[[ \t]*(?P<loss>{_FLOAT})[ \t]*,[ \t]*(?P<val>{_FLOAT})[ \t]*\][ \t]*$", re.M)
_PARAMS = re.compile(
    r"(?<![\w-])(?:(?P<kind>(?:total[ \t]+)?number[ \t]+of(?:[ \t]+trainable)?|total|trainable)[ \t]+param(?:eter)?s"
    r"[ \t]*[:=]?[ \t]*(?P<n>\d[\d,]*)"
    # Parameters: 13808 / Model params = 13808, at the start of its line (not `Non-trainable params: 0`)
    r"|^[ \t]*(?:(?:model|network|net)(?:'s)?[ \t]+)?(?P<plain>param(?:eter)?s)[ \t]*[:=][ \t]*(?P<plain_n>\d[\d,]*)"
    r"(?![\d.])"
    # The model has 13,808 trainable parameters
    r"|(?<![\d.,])(?P<before_n>\d[\d,]*)[ \t]+(?P<before>trainable[ \t]+)?param(?:eter)?s(?![\w-]))",
    re.M,
)
# Code that prints a bare count: print(sum(p.numel() ...)), a last line sum(...numel...), print(model.count_params()).
_COUNT_CODE = r"(?:sum[ \t]*\(.*\.numel[ \t]*\(|[\w.]+\.count_params[ \t]*\()"
_COUNT_ASSIGNED = re.compile(rf"^[ \t]*(?P<name>[A-Za-z_]\w*)[ \t]*=[ \t]*{_COUNT_CODE}.*$", re.M)
_COUNT_SHOWN = re.compile(rf"^[ \t]*(?:print[ \t]*\([ \t]*)?{_COUNT_CODE}.*$", re.M)
_BARE_NUMBER = re.compile(r"^[ \t]*(\d[\d,_]*)[ \t]*$", re.M)
_EPOCH = re.compile(r"epoch(?<![a-z]epoch)(?![a-z_])[ \t]*[:=#]?[ \t]*(\d+)")


@dataclass(frozen=True)
class Claim:
    value: float
    cell: int
    line: str  # the output line it was read from, to show in feedback


@dataclass(frozen=True)
class Claims:
    accuracies: tuple[Claim, ...]  # test accuracies in percent, in output order
    params: tuple[Claim, ...]  # total parameter counts in output order
    trainable_params: tuple[Claim, ...]
    epoch_numbers: tuple[int, ...]

    def facts(self) -> ClaimsFacts:
        values = [claim.value for claim in self.accuracies]
        counts = self.trainable_params or self.params
        kind = None if not counts else "trainable" if self.trainable_params else "total"
        if self.epoch_numbers:
            counted_from = min(min(self.epoch_numbers), 1)
            epochs: Optional[int] = max(self.epoch_numbers) + 1 - counted_from
        else:
            epochs = len(values) or None
        return ClaimsFacts(
            params=int(counts[-1].value) if counts else None,
            params_kind=kind,
            accuracy=max(values) if values else None,
            last_accuracy=values[-1] if values else None,
            epochs=epochs,
        )


def find_claims(cells: Iterable[tuple[int, Iterable[str]] | tuple[int, Iterable[str], str]]) -> Claims:
    """`cells`: (cell index, output texts) of each code cell, in notebook order, with the cell's source as a third
    item where it is known (it lets a bare printed count be read)."""
    accuracies: list[Claim] = []
    params: list[Claim] = []
    trainable: list[Claim] = []
    epochs: list[int] = []
    for index, outputs, *source in cells:
        text = screen_text("\n".join(outputs))
        lowered = _lowercase(text)
        accuracies.extend(Claim(value, index, _line_at(text, at)) for at, value in _accuracies_in(lowered))
        for match in _params_in(lowered):
            number = match["n"] or match["plain_n"] or match["before_n"]
            claim = Claim(int(number.replace(",", "")), index, _line_at(text, match.start()))
            (trainable if "trainable" in (match["kind"] or match["before"] or "") else params).append(claim)
        if source:
            bare = _bare_count(source[0], text)
            if bare is not None:
                (trainable if bare[1] else params).append(Claim(bare[0], index, _line_at(text, bare[2])))
        epochs.extend(map(int, _EPOCH.findall(lowered)))
    return Claims(tuple(accuracies), tuple(params), tuple(trainable), tuple(epochs))


def _bare_count(source: str, text: str) -> Optional[tuple[int, bool, int]]:
    """(count, trainable only, position in `text`) of a count the cell's code prints alone (module docstring);
    None unless the code shows exactly one count and the output has exactly one line that is only a number."""
    shown = [m[0] for m in _COUNT_SHOWN.finditer(source)]
    for assigned in _COUNT_ASSIGNED.finditer(source):
        name = assigned["name"]
        printed = re.compile(rf"^[ \t]*(?:print[ \t]*\([ \t]*{name}[ \t]*\)|{name})[ \t]*$", re.M)
        shown.extend(assigned[0] for _ in printed.finditer(source))
    numbers = list(_BARE_NUMBER.finditer(text))
    if len(shown) != 1 or len(numbers) != 1:
        return None
    return int(re.sub("[,_]", "", numbers[0][1])), "requires_grad" in shown[0], numbers[0].start(1)


def screen_text(text: str) -> str:
    """`text` as a terminal leaves it after progress-bar redraws: per line, what follows the last `\r`."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if "\b" in text:
        text = text.replace("\b", "")
    if "\r" in text:
        text = _REDRAWN_LINE.sub(_last_redraw, text)
    return text


def _last_redraw(line: re.Match) -> str:
    return next((part for part in reversed(line[0].split("\r")) if part.strip()), "")


def _accuracies_in(text: str) -> list[tuple[int, float]]:
    """(position, percent) of each test accuracy lowercased `text` claims, in order (rules: module docstring)."""
    found = []
    for match in _TEST_ACCURACY.finditer(text):
        if match["den"]:
            correct, total = int(match["num"]), int(match["den"])
            value = round(100 * correct / total, 4) if 0 < total and correct <= total else None
            found.append((match.start("num"), value))
        elif match["val"]:
            found.append((match.start("val"), _percent(match["val"], match["pct"])))
        else:
            found.append((match.start("next"), _percent(match["next"], match["next_pct"])))
    for match in _TUTORIAL.finditer(text):
        found.append((match.start("val"), float(match["val"])))
    for match in _SCORE_PAIR.finditer(text):
        if float(match["loss"]) >= 0 and 0 <= float(match["val"]) <= 1:
            found.append((match.start("val"), round(float(match["val"]) * 100, 4)))
    return sorted((at, value) for at, value in found if value is not None)


def _params_in(text: str) -> list[re.Match]:
    """Parameter counts: the full pattern runs only on the few lines that say "param"."""
    found: list[re.Match] = []
    line_end = -1
    for word in re.finditer("param", text):
        if word.start() < line_end:
            continue
        line_start = text.rfind("\n", 0, word.start()) + 1
        line_end = text.find("\n", word.start())
        line_end = len(text) if line_end < 0 else line_end
        found.extend(_PARAMS.finditer(text, line_start, line_end))
    return found


def _lowercase(text: str) -> str:
    # U+0130 is the one character whose lowercase is two characters; replacing it keeps positions.
    return text.replace("\u0130", "i").lower()


def _percent(text: str, percent_sign: Optional[str]) -> Optional[float]:
    """A printed accuracy in percent: values up to 1 without a % sign are fractions; None if out of range."""
    value = float(text)
    value = value if percent_sign or value > 1 else value * 100
    return round(value, 4) if 0 <= value <= 100 else None


def _line_at(text: str, position: int) -> str:
    end = text.find("\n", position)
    return text[text.rfind("\n", 0, position) + 1 : end if end >= 0 else len(text)].strip()
