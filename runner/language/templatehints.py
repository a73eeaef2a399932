"""How to fix a template syntax error, said for people who do not write Jinja every day.

Jinja's parser messages name its grammar ("expected 'end of statement block'",
"unexpected '}'"); ``syntax_hint`` turns the common ones into what to write, and
names the nearest filter or tag for a misspelt one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from runner.language.schema import did_you_mean

# The tags a template may use (Jinja's own; the sandbox adds none).
TAGS = ("if", "elif", "else", "endif", "for", "endfor", "set", "endset", "block", "endblock", "extends",
        "include", "import", "from", "macro", "endmacro", "call", "endcall", "filter", "endfilter", "with",
        "endwith", "raw", "endraw", "autoescape", "endautoescape", "trans", "endtrans", "pluralize")

_CLOSERS = {
    "end of statement block": "close the tag with `%}`: {% if contact.plan == 'pro' %}",
    "end of print statement": "close the value with `}}`: {{ contact.first_name }}",
    "end of comment": "close the comment with `#}`",
}


def syntax_hint(message: str, filters: Iterable[str]) -> str | None:
    """What to write instead, for Jinja's syntax ``message`` (None when there is nothing to add)."""
    for expected, hint in _CLOSERS.items():
        if f"expected '{expected}'" in message:
            return hint
    if message == "Missing end of comment tag":
        return _CLOSERS["end of comment"]
    if message == "unexpected '}'":
        return "a value is written {{ … }} and a tag {% … %}: each needs both closing characters"
    if message.startswith("unexpected char") and ("'" in message or '"' in message):
        return "a quoted text is not closed: end it with the same quote it starts with"
    if missing := re.match(r"No filter named '([^']+)'", message):
        return _nearest("filter", missing.group(1), sorted(filters))
    if unknown := re.match(r"Encountered unknown tag '([^']+)'", message):
        tag = unknown.group(1)
        if "Jinja was looking for the following tags" in message:
            needed = re.search(r"block that needs to be closed is '([^']+)'", message)
            return f"close `{needed.group(1)}` with `end{needed.group(1)}` before `{tag}`" if needed else None
        return _nearest("tag", tag, TAGS)
    if needed := re.search(r"Unexpected end of template.*block that needs to be closed is '([^']+)'", message):
        return f"add {{% end{needed.group(1)} %}} where the `{needed.group(1)}` block ends"
    return None


def _nearest(kind: str, name: str, known: Iterable[str]) -> str:
    choices = list(known)
    suggestion = did_you_mean(name, choices)
    if suggestion:
        return f"did you mean `{suggestion}`?"
    return f"no {kind} `{name}`; the {kind}s are: {', '.join(choices)}"
