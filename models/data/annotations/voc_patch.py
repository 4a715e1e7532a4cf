"""Write a VOC annotation by patching the XML it was read from, byte for byte, instead of regenerating it.

Why bytes and not an ElementTree round trip: a tree written back loses comments, the XML declaration, quoting
and whitespace, and every other tool's formatting, so a one-box edit would show as a whole-file diff. Here the
reader's bytes are walked once with expat to find where each element starts and ends; a write then changes
only the text of what differs (a coordinate, a name, a flag), removes deleted ``<object>`` elements, appends
new ones in the file's own indentation, and leaves everything else (``<folder>``, ``<source>``, ``<owner>``,
``<pose>``, ``<part>``, other tools' tags and attributes) exactly as it was.

The bytes were already parsed by defusedxml (no DTD, no entities) before they get here, so a plain expat pass
over them is safe.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from models.data.annotations.fidelity import (
    SourceRecord,
    match_origins,
    new_object_groups,
    same_box,
    unchanged,
)
from models.data.annotations.model import Annotation

_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_VERIFIED = re.compile(rb"""\sverified\s*=\s*(["'])(.*?)\1""", re.S)
_WS = b" \t\r\n"


@dataclass
class _Element:
    tag: str
    start: int  # index of '<'
    content: tuple[int, int] | None  # between the start and end tags; None for an empty element <x/>
    end: int  # index just past the end tag
    children: list[_Element] = field(default_factory=list)

    def child(self, tag: str) -> _Element | None:
        return next((c for c in self.children if c.tag == tag), None)

    @property
    def start_tag_end(self) -> int:
        return self.content[0] if self.content is not None else self.end


@dataclass(eq=False)
class VocSource(SourceRecord):
    """A VOC file as read; its element layout is found on the first write (reading a file list stays cheap)."""

    _layout: _Element | None = field(default=None, repr=False)
    _encoding: str = "utf-8"

    def layout(self) -> _Element | None:
        if self._layout is None:
            self._layout, self._encoding = _walk(self.data)
        return self._layout


def _tag_end(data: bytes, i: int) -> int:
    """Index just past the '>' closing the tag that starts at ``i`` (quotes respected)."""
    quote = 0
    n = len(data)
    while i < n:
        c = data[i]
        if quote:
            if c == quote:
                quote = 0
        elif c in (0x22, 0x27):
            quote = c
        elif c == 0x3E:
            return i + 1
        i += 1
    return n


def _walk(data: bytes) -> tuple[_Element | None, str]:
    """The element tree with byte offsets, and the encoding to write inserted text in (None: not patchable)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:4] in (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00"):
        return None, ""
    m = _ENCODING.match(data)
    encoding = m.group(1).decode("ascii").lower() if m else "utf-8"
    try:
        if "\n".encode(encoding) != b"\n" or "<a>".encode(encoding) != b"<a>":
            return None, ""  # not ASCII-compatible (UTF-16 without BOM): offsets would not splice
    except LookupError:
        return None, ""
    parser = xml.parsers.expat.ParserCreate()
    stack: list[_Element] = []
    root: list[_Element] = []

    def start(tag: str, _attrs: dict) -> None:
        i = parser.CurrentByteIndex
        e = _tag_end(data, i)
        empty = data[e - 2:e] == b"/>"
        el = _Element(tag, i, None if empty else (e, e), e)
        (stack[-1].children if stack else root).append(el)
        stack.append(el)

    def end(_tag: str) -> None:
        el = stack.pop()
        if el.content is None:
            return
        i = parser.CurrentByteIndex
        el.content = (el.content[0], i)
        el.end = _tag_end(data, i)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError:
        return None, ""
    return (root[0] if root else None), encoding


def _fmt(v: float) -> str:
    r = round(v)
    return str(int(r)) if abs(v - r) < 1e-6 else f"{v:.2f}"


def _text(data: bytes, el: _Element | None, encoding: str) -> str | None:
    if el is None or el.content is None:
        return None
    try:
        return data[el.content[0]:el.content[1]].decode(encoding).strip()
    except UnicodeDecodeError:
        return None


def _line_indent(data: bytes, pos: int) -> bytes:
    """The whitespace between the start of ``pos``'s line and ``pos``."""
    k = pos
    while k > 0 and data[k - 1] in b" \t":
        k -= 1
    return data[k:pos] if k == 0 or data[k - 1] in b"\r\n" else b""


class _Patch:
    """Non-overlapping splices on the original bytes, applied at once."""

    def __init__(self, data: bytes, encoding: str) -> None:
        self.data = data
        self.encoding = encoding
        self.edits: list[tuple[int, int, bytes]] = []

    def enc(self, text: str) -> bytes:
        return text.encode(self.encoding, "xmlcharrefreplace")

    def replace(self, start: int, end: int, new: bytes) -> None:
        if self.data[start:end] != new:
            self.edits.append((start, end, new))

    def set_text(self, el: _Element, text: str) -> None:
        new = self.enc(escape(text))
        if el.content is None:  # <x/> → <x>text</x>
            self.replace(el.start, el.end, self.enc(f"<{el.tag}>") + new + self.enc(f"</{el.tag}>"))
        else:
            self.replace(el.content[0], el.content[1], new)

    def apply(self) -> bytes:
        out, last = [], 0
        for start, end, new in sorted(self.edits, key=lambda e: (e[0], e[1])):
            out.append(self.data[last:start])
            out.append(new)
            last = end
        out.append(self.data[last:])
        return b"".join(out)


def _newline(data: bytes) -> str:
    return "\r\n" if b"\r\n" in data else "\n"


def _object_xml(ann_obj, obj_indent: str, step: str, nl: str) -> str:
    ci, bi = obj_indent + step, obj_indent + step + step
    x1, y1, x2, y2 = ann_obj.box
    lines = [
        "<object>",
        f"{ci}<name>{escape(ann_obj.name)}</name>",
        f"{ci}<pose>Unspecified</pose>",
        f"{ci}<truncated>{int(bool(ann_obj.truncated))}</truncated>",
        f"{ci}<difficult>{int(bool(ann_obj.difficult))}</difficult>",
        f"{ci}<bndbox>",
        f"{bi}<xmin>{_fmt(x1 + 1.0)}</xmin>",
        f"{bi}<ymin>{_fmt(y1 + 1.0)}</ymin>",
        f"{bi}<xmax>{_fmt(x2)}</xmax>",
        f"{bi}<ymax>{_fmt(y2)}</ymax>",
        f"{ci}</bndbox>",
        f"{obj_indent}</object>",
    ]
    return nl.join(lines)


def _insert_child(p: _Patch, parent: _Element, text: str, nl: str) -> None:
    """Append ``text`` (one element) as the last child of ``parent``, indented like its other children."""
    if parent.content is None:
        return
    data = p.data
    first = parent.children[0] if parent.children else None
    indent = _line_indent(data, first.start).decode(p.encoding) if first is not None else \
        _line_indent(data, parent.start).decode(p.encoding) + "\t"
    k = parent.content[1]
    while k > parent.content[0] and data[k - 1] in _WS:
        k -= 1
    p.replace(k, k, p.enc(nl + indent + text))


def _patch_object(p: _Patch, el: _Element, obj, was, nl: str) -> None:
    """Change only what differs between ``obj`` (now) and ``was`` (as the file states it)."""
    name = el.child("name")
    if obj.name != was.name and name is not None:
        p.set_text(name, obj.name)
    for tag in ("truncated", "difficult"):
        now, before = bool(getattr(obj, tag)), bool(getattr(was, tag))
        if now == before:
            continue
        child = el.child(tag)
        if child is not None:
            p.set_text(child, "1" if now else "0")
        else:
            _insert_child(p, el, f"<{tag}>{int(now)}</{tag}>", nl)
    bnd = el.child("bndbox")
    if bnd is None or same_box(obj.box, was.box):
        return
    x1, y1, x2, y2 = obj.box
    px1, py1, px2, py2 = was.box
    for tag, v, old in (("xmin", x1 + 1.0, px1 + 1.0), ("ymin", y1 + 1.0, py1 + 1.0), ("xmax", x2, px2),
                        ("ymax", y2, py2)):
        child = bnd.child(tag)
        if child is not None and abs(v - old) > 1e-6:
            p.set_text(child, _fmt(v))


def patched_voc_bytes(ann: Annotation, src: VocSource) -> bytes | None:
    """The file's bytes with ``ann``'s changes applied, or None when the layout cannot be patched."""
    if unchanged(ann, src):
        return src.data
    root = src.layout()
    if root is None or root.tag != "annotation" or root.content is None:
        return None
    data = src.data
    p = _Patch(data, src._encoding)
    nl = _newline(data)
    # The verified mark: an attribute of the root element.
    head = data[root.start:root.start_tag_end]
    m = _VERIFIED.search(head)
    if m is not None:
        was_verified = m.group(2).strip().lower() == b"yes"
        if was_verified != bool(ann.verified):
            p.replace(root.start + m.start(2), root.start + m.end(2), b"yes" if ann.verified else b"no")
    elif ann.verified:
        k = root.start_tag_end - 1
        p.replace(k, k, b' verified="yes"')
    # Image-level fields we model: the file name and size (left alone when they already say the same).
    fn = root.child("filename")
    if ann.filename and fn is not None and _text(data, fn, p.encoding) != ann.filename:
        p.set_text(fn, ann.filename)
    size = root.child("size")
    if size is not None:
        for tag, value in (("width", ann.width), ("height", ann.height), ("depth", ann.depth)):
            child = size.child(tag)
            if child is None or not value:
                continue
            try:
                same = float(_text(data, child, p.encoding) or "nan") == float(value)
            except ValueError:
                same = False
            if not same:
                p.set_text(child, str(int(value)))
    # Objects: the file's <object> elements, patched in place, removed, or new ones appended.
    elements = [c for c in root.children if c.tag == "object"]
    if len(elements) != len(src.file_objects):
        return None
    targets = match_origins(ann.objects, src)
    kept_in_memory_order = [(obj, j) for obj, j in zip(ann.objects, targets, strict=True) if j is not None]
    kept_slots = sorted(j for _, j in kept_in_memory_order)
    for slot, (obj, j) in zip(kept_slots, kept_in_memory_order, strict=True):
        if slot == j:
            _patch_object(p, elements[j], obj, src.file_objects[j], nl)
        else:  # the order of objects changed: slot ``slot`` takes object j's (patched) element
            sub = _Patch(data, p.encoding)
            _patch_object(sub, elements[j], obj, src.file_objects[j], nl)
            el, applied = elements[j], sub.apply()
            text = applied[el.start:el.end + len(applied) - len(data)]  # every sub-edit lies inside el
            p.replace(elements[slot].start, elements[slot].end, text)
    for j, el in enumerate(elements):
        if j not in kept_slots:
            k = el.start
            while k > 0 and data[k - 1] in _WS:
                k -= 1
            p.replace(k, el.end, b"")
    groups = new_object_groups(targets)
    if groups:
        step = _indent_step(data, elements, root, p.encoding) or "\t"
    for g, idx in groups.items():
        objs = [ann.objects[k] for k in idx]
        if kept_slots and g == 0:  # before the first kept object, in its indentation
            el = elements[kept_slots[0]]
            indent = _line_indent(data, el.start).decode(p.encoding)
            p.replace(el.start, el.start, p.enc("".join(_object_xml(o, indent, step, nl) + nl + indent for o in objs)))
            continue
        if kept_slots:  # right after the g-th kept object
            anchor: _Element | None = elements[kept_slots[g - 1]]
        else:  # no object kept: after the last object, or the last element
            anchor = elements[-1] if elements else (root.children[-1] if root.children else None)
        if anchor is not None:
            indent = _line_indent(data, anchor.start).decode(p.encoding)
            at = anchor.end
        else:
            indent, at = "\t", root.content[1]
            while at > root.content[0] and data[at - 1] in _WS:
                at -= 1
        p.replace(at, at, p.enc("".join(nl + indent + _object_xml(o, indent, step, nl) for o in objs)))
    return p.apply()


def _indent_step(data: bytes, elements: list[_Element], root: _Element, encoding: str) -> str:
    """One level of the file's indentation (a tab, two spaces, …), from an element and its first child."""
    for parent in [*elements, *root.children]:
        if parent.children:
            outer = _line_indent(data, parent.start)
            inner = _line_indent(data, parent.children[0].start)
            if len(inner) > len(outer) and inner.startswith(outer):
                return inner[len(outer):].decode(encoding)
    return ""


__all__ = ["VocSource", "patched_voc_bytes"]
