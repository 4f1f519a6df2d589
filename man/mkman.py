#!/usr/bin/env python3
"""Generates the man pages of alfred, batadv-vis and alfred-gpsd from one
source file (man/alfred.pages) and checks them against a program's -h.

  mkman.py build SOURCE OUTDIR --version VERSION
      writes OUTDIR/<name>.<section> for every @page in SOURCE
  mkman.py check PAGE -- PROGRAM [ARGS...]
      runs PROGRAM ARGS (its usage text, e.g. `alfred -h`) and fails if an
      option it lists (-x or --long) is not an option entry of PAGE

The source format, line by line (Python standard library only, no other
build dependency):

  %% text                 a comment
  @block NAME ... @endblock   text shared by several pages, inserted by
  @include NAME           (blocks may be used in any page, in any context)
  @page NAME SECTION      starts a page; @purpose TEXT is its NAME line
  @date YYYY-MM-DD        the date of the manual (one for all pages)
  @section TITLE          .SH            @subsection TITLE   .SS
  @option SPEC            an option entry: in SPEC every word starting with
                          '-' is bold, the rest as inline markup below
  @tag SPEC               an entry whose tag is only inline markup
  @item                   a bullet item (until the next entry, blank @end
                          or section)
  @end                    ends the current entry list: back to the margin
  @verbatim ... @endverbatim  literal lines, no markup
  @lines ... @endlines    lines kept as they are, with inline markup
  other lines             running text; a blank line starts a paragraph

Inline markup: *bold*, _italic_ (only at word boundaries, so FOO_BAR and
unix_path stay as they are); a backslash makes the next character literal,
and a backslash before a space makes it one no line break may replace.
The generated roff uses only man(7) macros that groff, mandoc and man-db
all know, escapes every '-' as \\- (so options copy and paste as ASCII)
and never emits an empty paragraph, which is what `mandoc -Tlint` checks.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

# ---------------------------------------------------------------- escaping


def esc(text: str) -> str:
    """Plain text -> roff text (no font changes)."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\e")
        elif ch == "-":
            out.append("\\-")
        elif ch == "'":
            out.append("\\(aq")
        elif ch == "`":
            out.append("\\(ga")
        elif ch == "^":
            out.append("\\(ha")
        elif ch == "~":
            out.append("\\(ti")
        else:
            out.append(ch)
    return "".join(out)


_WORD = r"[A-Za-z0-9]"


def inline(text: str) -> str:
    """Inline markup -> roff: *bold*, _italic_, backslash escapes."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            # "\ " is a space no line break may replace (as in "100\ ms").
            out.append("\\~" if text[i + 1] == " " else esc(text[i + 1]))
            i += 2
            continue
        if ch in "*_":
            before = text[i - 1] if i > 0 else " "
            if not re.match(_WORD, before) and i + 1 < n and not text[i + 1].isspace():
                j = i + 1
                while j < n:
                    if text[j] == "\\":
                        j += 2
                        continue
                    if text[j] == ch:
                        after = text[j + 1] if j + 1 < n else " "
                        if not re.match(_WORD, after) and not text[j - 1].isspace():
                            break
                    j += 1
                if j < n:
                    font = "B" if ch == "*" else "I"
                    out.append(f"\\f{font}{inline(text[i + 1:j])}\\fR")
                    i = j + 1
                    continue
        out.append(esc(ch))
        i += 1
    return "".join(out)


def text_line(roff: str) -> str:
    """A line of running text must not start with a control character."""
    if roff.startswith((".", "'")):
        return "\\&" + roff
    if roff.startswith(" "):
        return "\\&" + roff
    return roff


def quote_arg(text: str) -> str:
    return '"' + text.replace('"', '\\(dq') + '"'


def option_spec(spec: str) -> str:
    words = spec.split(" ")
    out = []
    for w in words:
        m = re.fullmatch(r"(--?[A-Za-z0-9][A-Za-z0-9-]*)([,|]?)", w)
        if m:
            out.append(f"\\fB{esc(m.group(1))}\\fR{esc(m.group(2))}")
        else:
            out.append(inline(w))
    return " ".join(out)


# ---------------------------------------------------------------- parsing


class Page:
    def __init__(self, name: str, section: str):
        self.name = name
        self.section = section
        self.purpose = ""
        self.body: list[str] = []  # source lines after @purpose


def read_source(path: str) -> tuple[list[Page], str]:
    with open(path, encoding="utf-8") as f:
        raw = f.read().split("\n")
    blocks: dict[str, list[str]] = {}
    pages: list[Page] = []
    date = ""
    cur_block: list[str] | None = None
    cur_name = ""
    for lineno, line in enumerate(raw, 1):
        if line.startswith("%%"):
            continue
        if cur_block is not None:
            if line.strip() == "@endblock":
                blocks[cur_name] = cur_block
                cur_block = None
            else:
                cur_block.append(line)
            continue
        if line.startswith("@block "):
            cur_name = line.split(None, 1)[1].strip()
            cur_block = []
            continue
        if line.startswith("@date "):
            date = line.split(None, 1)[1].strip()
            continue
        if line.startswith("@page "):
            parts = line.split()
            if len(parts) != 3:
                sys.exit(f"{path}:{lineno}: @page NAME SECTION")
            pages.append(Page(parts[1], parts[2]))
            continue
        if line.startswith("@purpose "):
            pages[-1].purpose = line.split(None, 1)[1].strip()
            continue
        if pages:
            pages[-1].body.append(line)
        elif line.strip():
            sys.exit(f"{path}:{lineno}: text before the first @page")
    if cur_block is not None:
        sys.exit(f"{path}: @block {cur_name} without @endblock")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        sys.exit(f"{path}: @date YYYY-MM-DD missing")

    def expand(lines: list[str], depth: int = 0) -> list[str]:
        if depth > 8:
            sys.exit(f"{path}: @include nested too deep")
        out = []
        for ln in lines:
            if ln.startswith("@include "):
                name = ln.split(None, 1)[1].strip()
                if name not in blocks:
                    sys.exit(f"{path}: @include {name}: no such @block")
                out.extend(expand(blocks[name], depth + 1))
            else:
                out.append(ln)
        return out

    for p in pages:
        p.body = expand(p.body)
        if not p.purpose:
            sys.exit(f"{path}: page {p.name} has no @purpose")
    return pages, date


# ---------------------------------------------------------------- rendering


def sentences(text: str) -> list[str]:
    """Splits running text at sentence ends: roff wants each sentence to
    start a line (it then puts the wider sentence space after it)."""
    return [t for t in re.split(r"(?:(?<=[A-Za-z0-9)][.!?])|(?<=[.!?][*_]))\s+(?=[A-Z*_(])", text)
            if t]


def wrap(roff: str, width: int = 80) -> list[str]:
    """Breaks a line of roff text at spaces so no line exceeds width bytes."""
    lines = []
    cur = ""
    for word in roff.split(" "):
        if cur and len((cur + " " + word).encode()) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        lines.append(cur)
    return [text_line(l) for l in lines]


def render(page: Page, date: str, version: str, source_name: str) -> str:
    title = page.name.upper().replace("-", "\\-")
    out = [
        f".\\\" Generated from {source_name} by mkman.py; edit that file, not this one.",
        f".TH {title} {page.section} {date} {quote_arg(version)}",
        # No hyphenation (it would split option names and identifiers such
        # as ALFRED_MODE), ragged right (without hyphens, justified lines
        # get wide gaps).
        ".nh",
        ".ad l",
        ".SH NAME",
        f"{esc(page.name)} \\- {esc(page.purpose)}",
    ]
    # context: "top" (at the margin) or "entry" (indented, inside .TP/.IP).
    # need_break: the next text starts a new paragraph; the paragraph macro
    # is written only then, so none is ever empty (after .SH, before .SH).
    state = {"context": "top", "need_break": False}
    para: list[str] = []

    def flush():
        if para:
            if state["need_break"]:
                out.append(".IP" if state["context"] == "entry" else ".PP")
            for sentence in sentences(" ".join(para)):
                out.extend(wrap(inline(sentence)))
            para.clear()
            state["need_break"] = True

    lines = page.body
    i = 0
    while i < len(lines):
        s = lines[i].strip()
        i += 1
        if not s:
            flush()
            continue
        if not s.startswith("@"):
            para.append(s)
            continue
        flush()
        word, _, rest = s.partition(" ")
        if word in ("@section", "@subsection"):
            macro = ".SH" if word == "@section" else ".SS"
            out.append(f"{macro} {quote_arg(esc(rest))}" if " " in rest else f"{macro} {esc(rest)}")
            state.update(context="top", need_break=False)
        elif word in ("@option", "@tag"):
            out.append(".TP")
            out.extend(wrap(option_spec(rest) if word == "@option" else inline(rest)))
            state.update(context="entry", need_break=False)
        elif word == "@item":
            out.append(".IP \\(bu 2")
            state.update(context="entry", need_break=False)
        elif word == "@end":
            if state["context"] == "entry":
                state.update(context="top", need_break=True)
        elif word in ("@verbatim", "@lines"):
            endtag = "@endverbatim" if word == "@verbatim" else "@endlines"
            block = []
            while i < len(lines) and lines[i].strip() != endtag:
                block.append(lines[i])
                i += 1
            if i == len(lines):
                sys.exit(f"{page.name}: {word} without {endtag}")
            i += 1
            if state["need_break"]:
                out.append(".IP" if state["context"] == "entry" else ".PP")
            # Examples are indented: at the margin by .RS; inside an entry
            # (.RS there would count from the margin, not from the entry's
            # indentation) by two spaces, which no-fill mode keeps.
            verbatim = word == "@verbatim"
            rs = verbatim and state["context"] == "top"
            pad = "  " if verbatim and not rs else ""
            if rs:
                out.append(".RS 4")
            out.append(".nf")
            for b in block:
                if b.strip():
                    out.append(text_line(pad + (esc(b) if verbatim else inline(b))))
                else:
                    out.append("\\&")
            out.append(".fi")
            if rs:
                out.append(".RE")
            state["need_break"] = True
        else:
            sys.exit(f"{page.name}: unknown directive {word}")
    flush()
    return "\n".join(out) + "\n"


def build(args) -> int:
    pages, date = read_source(args.source)
    os.makedirs(args.outdir, exist_ok=True)
    for p in pages:
        path = os.path.join(args.outdir, f"{p.name}.{p.section}")
        text = render(p, date, args.version, os.path.basename(args.source))
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    return 0


# ---------------------------------------------------------------- checking

_OPT = re.compile(r"(?<![\w-])(--?[A-Za-z0-9][A-Za-z0-9-]*)")


def page_options(path: str) -> set[str]:
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    found = set()
    for i, l in enumerate(lines):
        if l == ".TP" and i + 1 < len(lines):
            tag = re.sub(r"\\f[BIRP]", "", lines[i + 1]).replace("\\-", "-")
            found.update(_OPT.findall(tag))
    return found


def usage_options(text: str) -> set[str]:
    found = set()
    for l in text.split("\n"):
        stripped = l.lstrip()
        if not stripped.startswith("-"):
            continue
        # The option column: up to the first run of two spaces.
        column = re.split(r"\s{2,}", stripped, maxsplit=1)[0]
        found.update(_OPT.findall(column))
    return found


def check(args) -> int:
    cp = subprocess.run(args.program, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL, timeout=30)
    listed = usage_options(cp.stdout.decode("utf-8", "replace"))
    if not listed:
        print(f"mkman check: {' '.join(args.program)} listed no options", file=sys.stderr)
        return 1
    documented = page_options(args.page)
    missing = sorted(listed - documented)
    if missing:
        print(f"mkman check: {args.page} lacks entries for {' '.join(missing)} "
              f"(listed by {' '.join(args.program)})", file=sys.stderr)
        return 1
    print(f"{os.path.basename(args.page)}: all {len(listed)} options of "
          f"`{' '.join(os.path.basename(a) if k == 0 else a for k, a in enumerate(args.program))}` documented")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("source")
    b.add_argument("outdir")
    b.add_argument("--version", required=True)
    c = sub.add_parser("check")
    c.add_argument("page")
    c.add_argument("program", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.cmd == "build":
        return build(args)
    if args.program and args.program[0] == "--":
        args.program = args.program[1:]
    if not args.program:
        ap.error("check: PROGRAM missing")
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
