"""The docs against the code: every setting of the config schema documented (and nothing else), the links and
pictures of README.md and docs/ resolving, and the README's commands existing.

docs/configuration.md documents a setting as a row of a table whose first column is headed `key`: the setting's
dotted path in backticks, `<name>` for a name the user chooses (`samples.<sample>.video`). Where config/config.yaml
sets the key, the row's `default` cell (and, for train, its `on the CPU` cell) must give the same value.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, run_snakemake

README = REPO / "README.md"
DOCS = REPO / "docs"
CONFIGURATION = DOCS / "configuration.md"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
README_MAX_LINES = 300


# ----------------------------------------------------------------- reading Markdown


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


FENCE = re.compile(r"^(```|~~~)(.*)$")


def split_code(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The text outside fenced code blocks (each block's lines blanked, so line counts stay), and the blocks as
    (info string, body)."""
    prose, blocks, block, info = [], [], None, ""
    for line in text.splitlines():
        fence = FENCE.match(line.strip())
        if block is None and fence:
            block, info = [], fence.group(2).strip()
            prose.append("")
        elif block is not None and line.strip() in ("```", "~~~"):
            blocks.append((info, "\n".join(block)))
            block = None
            prose.append("")
        elif block is not None:
            block.append(line)
            prose.append("")
        else:
            prose.append(line)
    assert block is None, "a code block is not closed"
    return "\n".join(prose), blocks


def table_rows(text: str) -> list[tuple[list[str], list[str]]]:
    """Every row of every pipe table outside code blocks, as (the table's header cells, the row's cells)."""
    prose, _ = split_code(text)
    rows: list[tuple[list[str], list[str]]] = []
    header: list[str] | None = None
    lines = prose.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            if i + 1 < len(lines) and re.fullmatch(r"\|?[\s:|-]+\|?", lines[i + 1].strip()):
                header = [cell.lower() for cell in cells]
        elif not re.fullmatch(r"[\s:-]*", "".join(cells)):
            rows.append((header, cells))
    return rows


def tables_with(text: str, first_column: str) -> list[tuple[list[str], list[str]]]:
    return [(header, cells) for header, cells in table_rows(text) if header and header[0] == first_column]


def headings(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    prose, _ = split_code(path.read_text())
    anchors: set[str] = set()
    for line in prose.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            title = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1)).lower()
            slug = re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title))
            anchor, n = slug, 0
            while anchor in anchors:
                n += 1
                anchor = f"{slug}-{n}"
            anchors.add(anchor)
    return anchors


# ----------------------------------------------------------------- the schema's settings


def schema_keys(schema: dict) -> tuple[set[tuple[str, ...]], dict[tuple[str, ...], tuple[str, ...]]]:
    """Every leaf setting of the config schema as a path ('*' where the user names the key), and the aliases: a
    place that reuses a definition already expanded elsewhere (train.cpu takes train's settings) is itself a key,
    and its settings are those of the first place."""
    definitions = schema.get("$defs", {})
    keys: set[tuple[str, ...]] = set()
    aliases: dict[tuple[str, ...], tuple[str, ...]] = {}
    expanded: dict[str, tuple[str, ...]] = {}

    def walk(node: dict, path: tuple[str, ...]) -> None:
        parts, pending = [], [node]
        while pending:
            part = pending.pop(0)
            if "$ref" in part:
                name = part["$ref"].rsplit("/", 1)[-1]
                if expanded.setdefault(name, path) != path:
                    aliases[path] = expanded[name]
                    continue
                part = {**definitions[name], **{k: v for k, v in part.items() if k != "$ref"}}
            parts.append(part)
            pending.extend(part.get("allOf", []))
        properties: dict[str, list[dict]] = {}
        for part in parts:
            for name, sub in part.get("properties", {}).items():
                properties.setdefault(name, []).append(sub)
        named = [part["additionalProperties"] for part in parts if isinstance(part.get("additionalProperties"), dict)]
        if path and (path in aliases or (not properties and not named)):
            keys.add(path)
        if path in aliases:
            return
        for name, subs in properties.items():
            walk({"allOf": subs}, path + (name,))
        for sub in named:
            walk(sub, path + ("*",))

    walk(schema, ())
    return keys, aliases


def documented_keys(text: str) -> dict[tuple[str, ...], tuple[list[str], list[str]]]:
    """The rows of the `key` tables: dotted path (a `<name>` segment as '*') -> (header, cells)."""
    rows: dict[tuple[str, ...], tuple[list[str], list[str]]] = {}
    for header, cells in tables_with(text, "key"):
        match = re.fullmatch(r"`([^`\s]+)`", cells[0])
        assert match, f"a `key` table's first cell must be one key in backticks, not {cells[0]!r}"
        path = tuple("*" if re.fullmatch(r"<[^>]+>", part) else part for part in match.group(1).split("."))
        assert path not in rows, f"{match.group(1)} is documented twice"
        assert cells[-1], f"{match.group(1)} has no description"
        rows[path] = (header, cells)
    return rows


def matches(doc: tuple[str, ...], key: tuple[str, ...]) -> bool:
    """A documented path names a schema key: the same segments, a concrete name standing for a '*'."""
    return len(doc) == len(key) and all(k in (d, "*") for d, k in zip(doc, key))


def coverage_problems(schema: dict, text: str) -> list[str]:
    """Schema keys without a row, and rows that name no schema key."""
    keys, aliases = schema_keys(schema)
    docs = documented_keys(text)
    problems = [f"{'.'.join(key)}: in the schema, not documented" for key in sorted(keys)
                if not any(matches(doc, key) for doc in docs)]
    for doc in sorted(docs):
        under_alias = [aliases[doc[:i]] + doc[i:] for i in range(1, len(doc)) if doc[:i] in aliases]
        if not any(matches(d, key) for d in (doc, *under_alias) for key in keys):
            problems.append(f"{'.'.join(doc)}: documented, not in the schema")
    return problems


def default_problems(config: dict, text: str) -> list[str]:
    """Rows whose default (or CPU default) disagrees with config/config.yaml."""
    problems = []

    def lookup(values: dict, path: tuple[str, ...]) -> tuple[bool, object]:
        for part in path:
            if not isinstance(values, dict) or part not in values:
                return False, None
            values = values[part]
        return True, values

    def check(key: str, cell: str, present: bool, value: object, column: str) -> None:
        if not present:
            if column == "on the cpu" and cell:
                problems.append(f"{key}: '{column}' says {cell!r}, but train.cpu does not set it")
            return
        match = re.fullmatch(r"`([^`]*)`", cell)
        if not match or yaml.safe_load(match.group(1)) != value:
            problems.append(f"{key}: '{column}' says {cell!r}; config/config.yaml has {value!r}")

    for path, (header, cells) in documented_keys(text).items():
        if "*" in path:
            continue
        key = ".".join(path)
        if "default" in header and path != ("train", "cpu"):
            check(key, cells[header.index("default")], *lookup(config, path), "default")
        if "on the cpu" in header and path[0] == "train" and len(path) == 2 and path != ("train", "cpu"):
            check(key, cells[header.index("on the cpu")], *lookup(config, ("train", "cpu", path[1])), "on the cpu")
    return problems


def test_every_setting_of_the_schema_is_documented_and_nothing_else():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert coverage_problems(schema, CONFIGURATION.read_text()) == []


def test_the_documented_defaults_are_the_config_files():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert default_problems(config, CONFIGURATION.read_text()) == []


def test_settings_named_in_key_tables_elsewhere_are_settings():
    """The README's table of the settings people change names keys the schema has."""
    schema = yaml.safe_load(SCHEMA.read_text())
    for path in markdown_files():
        if path == CONFIGURATION:
            continue
        problems = [p for p in coverage_problems(schema, path.read_text()) if p.endswith("not in the schema")]
        assert problems == [], path.name


def test_the_check_finds_a_missing_a_stray_and_a_wrong_setting():
    schema = yaml.safe_load(SCHEMA.read_text())
    text = CONFIGURATION.read_text()
    for row in ("train.nf", "train.cpu", "samples.<sample>.objects.<object>.labels",
                "edits.backgrounds.<name>.follow_camera"):
        without = re.sub(rf"^\| `{re.escape(row)}` \|.*\n", "", text, flags=re.M)
        assert without != text, row
        dotted = ".".join("*" if part.startswith("<") else part for part in row.split("."))
        assert coverage_problems(schema, without) == [f"{dotted}: in the schema, not documented"], row
    schema["$defs"]["train_settings"]["properties"]["patience"] = {"type": "integer"}
    assert "train.patience: in the schema, not documented" in coverage_problems(schema, text)
    nested = yaml.safe_load(SCHEMA.read_text())
    nested["properties"]["edits"]["properties"]["backgrounds"]["additionalProperties"]["properties"]["blur"] = {}
    assert coverage_problems(nested, text) == ["edits.backgrounds.*.blur: in the schema, not documented"]
    stray = text + "\n| key | default | what it does |\n|---|---|---|\n| `train.stepz` | `1` | a typo |\n"
    assert coverage_problems(yaml.safe_load(SCHEMA.read_text()), stray) == ["train.stepz: documented, not in the schema"]
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["train"]["steps"] = 5000
    config["train"]["cpu"]["steps"] = 2000
    assert default_problems(config, text) == [
        "train.steps: 'default' says '`4000`'; config/config.yaml has 5000",
        "train.steps: 'on the cpu' says '`3000`'; config/config.yaml has 2000"]


def config_example_problems(text: str) -> list[str]:
    """The YAML examples of a Markdown text that are config fragments (every top-level key a setting's section),
    merged over config/config.yaml as Snakemake merges a --configfile: what the config check refuses in them."""
    from omnimatte.config_check import config_problems

    schema = yaml.safe_load(SCHEMA.read_text())
    _, blocks = split_code(text)
    problems = []
    for info, body in blocks:
        fragment = yaml.safe_load(body) if info == "yaml" else None
        if not isinstance(fragment, dict) or not set(fragment) <= set(schema["properties"]):
            continue
        config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        for section, values in fragment.items():
            if isinstance(values, dict) and isinstance(config.get(section), dict):
                config[section] = {**config[section], **values}
            else:
                config[section] = values
        problems += config_problems(config, schema)
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
def test_the_config_examples_are_valid(path: Path):
    assert config_example_problems(path.read_text()) == []


def test_the_example_check_finds_a_mistyped_key():
    problems = config_example_problems("```yaml\ntrain:\n  stepz: 10\n```\n```yaml\nnot: [a, config]\n```\n")
    assert len(problems) == 1 and problems[0].startswith("train: unknown key 'stepz'")


# ----------------------------------------------------------------- links and pictures

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMG = re.compile(r"<img[^>]*\ssrc=\"([^\"]+)\"")


def link_problems(path: Path, text: str) -> list[str]:
    """Relative links and pictures of one Markdown file that lead nowhere: a missing file or heading."""
    prose, _ = split_code(text)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    problems = []
    for target in LINK.findall(prose) + IMG.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            problems.append(f"{path.name}: {target}: no file {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in headings(resolved):
            problems.append(f"{path.name}: {target}: no heading '#{anchor}' in {resolved.name}")
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
def test_every_relative_link_and_picture_resolves(path: Path):
    assert link_problems(path, path.read_text()) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_heading():
    text = "See [the method](docs/method.md#no-such-heading), ![a still](docs/images/none.jpg), [ok](docs/method.md)."
    problems = link_problems(README, text)
    assert len(problems) == 2 and "no heading '#no-such-heading'" in problems[0] and "none.jpg" in problems[1]


# ----------------------------------------------------------------- commands


def shell_commands(text: str) -> list[list[str]]:
    """The simple commands of a Markdown text's bash code blocks, as words: comments dropped, continued lines
    joined, and lines, `&&`, `;`, `|` and `for ... do ... done` taken apart."""
    _, blocks = split_code(text)
    commands: list[list[str]] = []
    for info, body in blocks:
        if info not in ("bash", "sh", "shell"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            words: list[str] = []
            for token in [*lexer, ";"]:
                if token not in (";", "&&", "||", "|", "&"):
                    words.append(token)
                    continue
                while words and words[0] in ("do", "then", "else", "!"):
                    words.pop(0)
                if words and words[0] not in ("for", "done", "fi", "if"):
                    commands.append(words)
                words = []
    return commands


def omnimatte_arguments(words: list[str]) -> list[str] | None:
    if words[:1] == ["omnimatte"]:
        return words[1:]
    if len(words) >= 3 and words[0].startswith("python") and words[1:3] == ["-m", "omnimatte"]:
        return words[3:]
    return None


def cli_problem(arguments: list[str]) -> str | None:
    """Why `omnimatte ARGUMENTS` would not parse, or None."""
    from omnimatte.cli import build_parser

    parser = build_parser()
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            args = parser.parse_args(arguments)
    except SystemExit as exit_:
        return None if exit_.code == 0 else output.getvalue().strip().splitlines()[-1]
    if not args.takes_settings and args.settings is not None:
        return f"`omnimatte {args.command}` takes no --settings"
    return None


def command_problems(text: str) -> list[str]:
    """`omnimatte` commands that the CLI refuses and scripts or repository paths that do not exist."""
    problems = []
    for words in shell_commands(text):
        line = " ".join(words)
        arguments = omnimatte_arguments(words)
        if arguments is not None:
            problem = cli_problem(arguments)
            if problem:
                problems.append(f"{line}: {problem}")
        elif words[0].startswith("python") and len(words) > 1 and words[1].endswith(".py"):
            if not (REPO / words[1]).is_file():
                problems.append(f"{line}: no script {words[1]}")
                continue
        for word in words:
            repo_path = re.match(r"^(?:--[a-z-]+=)?((?:config|profiles|tests|workflow|benchmarks|docs|\.test|\.ci)/[^{}*<>$]*)$", word)
            if repo_path and not (REPO / repo_path.group(1)).exists():
                problems.append(f"{line}: no {repo_path.group(1)} in the repository")
    return problems


def subcommands() -> set[str]:
    import argparse

    from omnimatte.cli import build_parser

    return {name for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices}


def inline_command_problems(text: str) -> list[str]:
    """Subcommands named in the prose's inline code (`omnimatte retime`, `python -m omnimatte stills ...`) that the
    CLI lacks; an upper-case word there is a placeholder (`omnimatte COMMAND --help`)."""
    prose, _ = split_code(text)
    known = subcommands()
    problems = []
    for span in re.findall(r"`([^`]+)`", prose):
        words = span.split()
        arguments = omnimatte_arguments(words)
        if arguments and not arguments[0].startswith("-") and not arguments[0].isupper() \
                and arguments[0] not in known:
            problems.append(f"{span}: no subcommand '{arguments[0]}'")
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
def test_every_omnimatte_command_parses_and_every_named_file_exists(path: Path):
    assert command_problems(path.read_text()) == []
    assert inline_command_problems(path.read_text()) == []


def test_the_command_check_finds_unknown_subcommands_flags_and_files():
    text = "```bash\npython -m omnimatte benchmark --suite fast --threads 2\nomnimatte pick clip.mp4 --sample a\n" \
           "omnimatte benchmark --suitx slow\nomnimatte pick clip.mp4 --settings '{}'\n" \
           "for c in *.mp4; do omnimatte pik \"$c\"; done\npython benchmarks/no_such.py\n" \
           "snakemake --configfile config/none.yaml all\n```\n"
    assert inline_command_problems("Run `omnimatte retime`, `python -m omnimatte\nstillz --out x` or "
                                   "`omnimatte COMMAND --help`.") == ["python -m omnimatte\nstillz --out x: no subcommand 'stillz'"]
    problems = command_problems(text)
    assert [p.split(":")[0] for p in problems] == [
        "omnimatte benchmark --suitx slow", "omnimatte pick clip.mp4 --settings {}", "omnimatte pik $c",
        "python benchmarks/no_such.py", "snakemake --configfile config/none.yaml all"]


def quick_start() -> str:
    """The README's quick-start section."""
    match = re.search(r"^## [^\n]*[Qq]uick start[^\n]*\n(.*?)(?=^## )", README.read_text(), flags=re.M | re.S)
    assert match, "README.md has no '## ... quick start' section"
    return match.group(1)


def test_the_readme_quick_start_has_the_two_commands_and_ci_runs_the_second():
    """One command installs and makes the demo's overview, one installs and runs the tests; .ci/run runs those
    tests' command."""
    commands = shell_commands(quick_start())
    assert [words[:3] for words in commands if words[0] == "pip"] == [["pip", "install", "-e"]] * 2
    assert any(words[0] == "snakemake" for words in commands)
    test_command = [words for words in commands if words[:3] == ["python", "-m", "pytest"]]
    assert test_command, "the quick start does not run the tests"
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^pip install -e \"\.\[test\]\"$", ci, flags=re.M)
    assert re.search(r"^python -m pytest\b", ci, flags=re.M)


def test_the_readme_quick_start_snakemake_targets_exist(workdir: Path):
    """A dry run of each quick-start `snakemake` command in a scratch working directory: every target is a rule or a
    file the workflow can make."""
    runs = [words[1:] for words in shell_commands(quick_start()) if words[0] == "snakemake"]
    assert runs
    for arguments in runs:
        result = run_snakemake(workdir, "--dry-run", *arguments, timeout=300)
        assert result.returncode == 0, f"snakemake {' '.join(arguments)}:\n{result.stderr[-3000:]}"


def test_a_dry_run_refuses_an_unknown_target(workdir: Path):
    """What the quick-start test relies on: a target the workflow cannot make fails the dry run."""
    result = run_snakemake(workdir, "--dry-run", "--cores", "all", "results/dog/omnimatt.mp4", timeout=300)
    assert result.returncode != 0


# ----------------------------------------------------------------- the README's figures and size


def benchmark_table(text: str) -> dict[str, dict[str, str]]:
    rows = tables_with(text, "preset")
    table: dict[str, dict[str, str]] = {}
    for header, cells in rows:
        if "soft iou" in header:
            table[cells[0]] = dict(zip(header, cells))
    return table


def test_the_readme_benchmark_table_agrees_with_docs_benchmarks():
    """The README's one table is a summary of the fast suite's table in docs/benchmarks.md: the same figures."""
    readme = benchmark_table(README.read_text())
    full = benchmark_table((DOCS / "benchmarks.md").read_text())
    assert readme and set(readme) <= set(full)
    for preset, row in readme.items():
        assert {column: full[preset].get(column) for column in row} == row, preset


def test_the_readme_is_a_short_guide():
    assert len(README.read_text().splitlines()) <= README_MAX_LINES

