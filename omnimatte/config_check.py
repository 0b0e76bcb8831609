"""Config validation with one short line per problem, naming the key and where it sits.

Snakemake's own `validate` stops at the first error and prints the schema around
it, hundreds of lines for a mistyped key. Here every problem of the merged config
is listed at once, each as `path.to.key: what is wrong`, and names refused by the
schema's name pattern are explained in words and listed together.
"""

from __future__ import annotations

import difflib
from typing import Any

#: The pattern the schema gives sample, object and background names (they become folder and file names).
NAME_PATTERN = "^[A-Za-z0-9_-]+$"
NAME_RULE = "names may hold only letters (A-Z, a-z), digits, '_' and '-' (no spaces, dots or other signs)"
#: Said by the config check, the sheets and the masks stage alike: an object's masks come from one place.
MASKS_OR_PROMPT = "give either `masks` (a mask folder) or a prompt (box/points), not both"


def _where(path: Any) -> str:
    return ".".join(str(part) for part in path) or "the top level"


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."


def config_problems(config: dict, schema: dict) -> list[str]:
    """Every way `config` breaks `schema`, one line each, in key order; empty when it is valid."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    problems: list[str] = []
    bad_names: dict[str, list[str]] = {}
    for error in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        where = _where(error.absolute_path)
        if "propertyNames" in error.schema_path:
            bad_names.setdefault(where, []).append(repr(error.instance))
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            unknown = [key for key in error.instance if key not in known]
            # A near miss names the key meant; otherwise the keys allowed here (a section can hold dozens).
            meant = [match for key in unknown for match in difflib.get_close_matches(key, list(known), n=1)]
            line = (f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
                    + (f"; did you mean {', '.join(map(repr, meant))}?" if meant
                       else f"; the keys allowed here: {', '.join(known)}" if known else ""))
        elif error.validator in ("anyOf", "oneOf") and all(set(s) == {"required"} for s in error.validator_value):
            choices = [" + ".join(s["required"]) for s in error.validator_value]
            line = f"{where}: give {'one' if error.validator == 'oneOf' else 'at least one'} of: {', '.join(choices)}"
        else:
            line = f"{where}: {_short(error.message)}"
        if line not in problems:
            problems.append(line)
    for where, names in bad_names.items():
        problems.append(f"{where}: {NAME_RULE}; these are not: {', '.join(names)}")
    return problems
