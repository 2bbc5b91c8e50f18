"""Read a published policy document (.txt / .docx / .pdf / portal .html) into plain text
for :func:`bot.kb.parser.parse_document`.

Every loader returns text with one paragraph per line, the form the parser reads; the
parser's own rules (page-break rejoining, bracket units) then work on it unchanged.
A file that cannot be read raises :class:`LoadError` with a Chinese message that names
the file. Nothing in a file is ever executed: .docx is read as XML from a size-checked
zip, .pdf only for its text layer, .html only for its text (scripts are dropped).
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import List, Optional

MAX_BYTES = 20 * 1024 * 1024          # largest file accepted (any format)
MAX_UNZIPPED = 100 * 1024 * 1024      # .docx: total uncompressed size of all parts
MAX_RATIO = 100                       # .docx: uncompressed / compressed, per part
MAX_PARTS = 2000                      # .docx: number of zip members
MIN_PDF_CHARS = 20                    # fewer visible characters than this = no text layer

SUFFIXES = (".txt", ".docx", ".pdf", ".html", ".htm")


class LoadError(ValueError):
    """The file cannot be read as a policy document (message in Chinese, names the file)."""


def supported(path: Path) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def load_text(path, data: Optional[bytes] = None) -> str:
    """The document's text, one paragraph per line. ``data``: the file's bytes when they
    are already in memory (an upload), else the file is read from ``path``."""
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix == ".doc":
        raise LoadError(f"{name}：不支持旧版 Word（.doc）格式，请在 Word 中另存为 .docx 后再上传")
    if suffix not in SUFFIXES:
        raise LoadError(f"{name}：不支持的文件类型“{suffix or '无扩展名'}”，"
                        f"只接受 .txt、.docx、.pdf、.html")
    if data is None:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise LoadError(f"{name}：无法读取文件（{exc.strerror or exc}）") from None
        if size > MAX_BYTES:
            raise LoadError(f"{name}：文件过大（{size / 1048576:.1f} MB），上限 {MAX_BYTES // 1048576} MB")
        data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise LoadError(f"{name}：文件过大（{len(data) / 1048576:.1f} MB），上限 {MAX_BYTES // 1048576} MB")
    if not data.strip():
        raise LoadError(f"{name}：文件是空的")
    kind = _sniff(data)
    expected = {".txt": "text", ".docx": "zip", ".pdf": "pdf", ".html": "text", ".htm": "text"}[suffix]
    if kind != expected:
        what = {"zip": "压缩包或 Office 文件", "pdf": "PDF 文件", "text": "文本文件",
                "binary": "二进制文件"}[kind]
        raise LoadError(f"{name}：文件内容与扩展名 {suffix} 不符（实际像是{what}）")
    if suffix == ".docx":
        text = _docx_text(data, name)
    elif suffix == ".pdf":
        text = _pdf_text(data, name)
    elif suffix in (".html", ".htm"):
        text = html_article_text(_decode(data, name, html=True), name)
    else:
        text = _decode(data, name)
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    if not text.strip():
        raise LoadError(f"{name}：文件中没有文字内容")
    return text


# --------------------------------------------------------------------------- sniffing
def _sniff(data: bytes) -> str:
    head = data[:8]
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if data.lstrip()[:5] == b"%PDF-":
        return "pdf"
    if head.startswith(b"\xd0\xcf\x11\xe0") or b"\x00" in data[:4096]:
        return "binary"  # OLE (.doc/.xls), images, executables … (UTF-16 text is refused too)
    return "text"


def _decode(data: bytes, name: str, html: bool = False) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    candidates = ["utf-8"]
    if html:
        m = re.search(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_-]+)""", data[:4096], re.I)
        if m:
            declared = m.group(1).decode("ascii", "ignore").lower()
            if declared in ("gb2312", "gbk", "gb18030"):
                declared = "gb18030"
            candidates.insert(0, declared)
    candidates.append("gb18030")  # plain text from Chinese Windows offices
    for enc in dict.fromkeys(candidates):
        try:
            text = data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
        controls = sum(1 for ch in text[:20000] if ord(ch) < 32 and ch not in "\n\r\t\f")
        if controls > 10:
            break
        return text
    raise LoadError(f"{name}：无法识别文字编码（只接受 UTF-8 或 GB18030/GBK 文本）")


# --------------------------------------------------------------------------- .docx
def _check_zip(data: bytes, name: str) -> None:
    import io

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise LoadError(f"{name}：不是有效的 .docx 文件（压缩结构损坏）") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_PARTS:
            raise LoadError(f"{name}：.docx 内部文件过多（{len(infos)} 个），疑似压缩炸弹，已拒绝")
        total = 0
        for info in infos:
            total += info.file_size
            ratio = info.file_size / max(info.compress_size, 1)
            if total > MAX_UNZIPPED or (info.file_size > 1024 * 1024 and ratio > MAX_RATIO):
                raise LoadError(f"{name}：.docx 解压后体积异常（{info.filename} 压缩比 {ratio:.0f}:1），"
                                f"疑似压缩炸弹，已拒绝")
        if "word/document.xml" not in zf.namelist():
            raise LoadError(f"{name}：不是 Word 文档（.docx 中没有 word/document.xml）")


def _docx_text(data: bytes, name: str) -> str:
    import io

    _check_zip(data, name)
    try:
        import docx
        from docx.oxml.ns import qn

        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 — a damaged file: say so, whatever the library raised
        raise LoadError(f"{name}：无法读取 Word 文档（{type(exc).__name__}）") from None
    lines: List[str] = []
    # Body in document order: paragraphs, and tables (a unit table) row by row.
    for child in document.element.body.iterchildren():
        if child.tag == qn("w:p"):
            lines.append(_para_text(child, qn))
        elif child.tag == qn("w:tbl"):
            for row in child.iter(qn("w:tr")):
                cells = ["".join(_para_text(p, qn) for p in tc.iter(qn("w:p")))
                         for tc in row.iter(qn("w:tc"))]
                lines.append("  ".join(c for c in cells if c))
    return "\n".join(lines)


def _para_text(p, qn) -> str:
    out = []
    for node in p.iter(qn("w:t"), qn("w:tab"), qn("w:br"), qn("w:cr")):
        if node.tag == qn("w:t"):
            out.append(node.text or "")
        elif node.tag == qn("w:tab"):
            out.append(" ")
        else:
            out.append("\n")  # a manual line break: the parser sees a new line
    return "".join(out)


# --------------------------------------------------------------------------- .pdf
PAGE_NUMBER_RE = re.compile(r"^[-—－–_·\s]*(第\s*)?\d{1,4}(\s*页)?(\s*/\s*共?\s*\d+\s*页?)?[-—－–_·\s]*$")


def _pdf_text(data: bytes, name: str) -> str:
    """The text layer, lines joined back into paragraphs: a line that reaches the right
    edge of the text block was wrapped by the typesetter and continues in the next line
    (also across a page break); a shorter line ends its paragraph. Page numbers
    (“- 3 -”, “第3页”) are dropped."""
    import io
    import logging

    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    try:
        import pdfplumber

        pdf = pdfplumber.open(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001
        raise LoadError(f"{name}：无法打开 PDF 文件（{type(exc).__name__}），文件可能已损坏或加密") from None
    lines: List[tuple] = []  # (text, x0, x1, right edge of the page's text)
    try:
        with pdf:
            for page in pdf.pages:
                page_lines = [ln for ln in page.extract_text_lines(layout=False, strip=True, return_chars=True)
                              if ln["text"].strip() and not PAGE_NUMBER_RE.match(ln["text"])]
                if not page_lines:
                    continue
                right = max(ln["x1"] for ln in page_lines)
                for ln in page_lines:
                    chars = [c for c in ln.get("chars", []) if c["text"].strip()]
                    width = (sum(c["x1"] - c["x0"] for c in chars) / len(chars)) if chars else 10.0
                    lines.append((ln["text"], ln["x1"], right, width))
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise LoadError(f"{name}：读取 PDF 时出错（{type(exc).__name__}）") from None
    visible = sum(len(re.sub(r"\s", "", t)) for t, *_ in lines)
    if visible < MIN_PDF_CHARS:
        raise LoadError(f"{name}：PDF 没有文字层（可能是扫描件或图片），无法提取文字；"
                        f"请上传带文字的 PDF、Word 文档或文本文件")
    from bot.kb.parser import ATTACHMENT_RE, ITEM_RE, SECTION_RE, TERMINAL

    paras: List[str] = []
    buf = ""
    for text, x1, right, width in lines:
        # A full line that closes a sentence, followed by a heading or item: a new paragraph.
        if buf and buf.endswith(TERMINAL) and (SECTION_RE.match(text) or ITEM_RE.match(text)
                                                or ATTACHMENT_RE.match(text)):
            paras.append(buf)
            buf = ""
        buf += text
        if x1 < right - 1.5 * width:  # stops short of the right edge: paragraph ends here
            paras.append(buf)
            buf = ""
    if buf:
        paras.append(buf)
    return "\n".join(paras)


# --------------------------------------------------------------------------- .html
# Portal article pages (TRS/WCM and similar CMSs) put the document into one container;
# these ids/classes name it. Checked first; the text-densest block is the fallback.
CONTENT_HINT_RE = re.compile(
    r"(^|[\s_-])(zoom|trs_editor|trs_paper_default|article[-_]?(content|body|text)|content[-_]?(text|body)?|"
    r"main[-_]?(content|text)|news[-_]?(content|text)|detail[-_]?(content|text)?|zw|zwnr|wzzw|text|pages?_content)"
    r"($|[\s_-])", re.I)
DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "object", "embed", "form", "nav", "header",
             "footer", "aside", "button", "select", "svg", "canvas")
BLOCK_TAGS = {"p", "div", "section", "article", "main", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol",
              "table", "tr", "blockquote", "pre", "dd", "dt", "dl", "center", "td", "th", "br", "hr"}


def html_article_text(markup: str, name: str = "页面") -> str:
    """The article body of a portal page as text, one block per line."""
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.document_fromstring(markup)
    except (etree.ParserError, ValueError):
        raise LoadError(f"{name}：无法解析 HTML 页面") from None
    for el in root.xpath("//comment() | //processing-instruction()"):
        _drop(el)
    for el in list(root.iter(*DROP_TAGS)):
        _drop(el)
    for el in root.xpath('//*[@role="navigation" or @role="banner" or @role="contentinfo" or @hidden '
                         'or contains(translate(@style, " ", ""), "display:none")]'):
        _drop(el)

    best = _pick_container(root)
    text = _block_text(best)
    lines = [re.sub(r"[ \t\u00a0\u3000]+", " ", ln).strip() for ln in text.split("\n")]
    return "\n".join(ln for ln in lines if ln)


def _drop(el) -> None:
    """Remove an element with its content, keeping the text that follows it."""
    if el.getparent() is not None:
        el.drop_tree()


def _cjk_len(text: str) -> int:
    return len(re.findall(r"[\u4e00-\u9fff]", text))


def _score(el) -> float:
    """CJK characters outside links: navigation and link lists score low."""
    total = _cjk_len(el.text_content())
    links = sum(_cjk_len(a.text_content()) for a in el.iter("a"))
    return total - 2 * links


def _pick_container(root):
    body = root.find("body") if root.find("body") is not None else root
    hinted = [el for el in body.iter("div", "section", "article", "td", "main")
              if CONTENT_HINT_RE.search(" ".join(filter(None, (el.get("id"), el.get("class")))))]
    hinted = [el for el in hinted if _score(el) >= 50]
    if hinted:
        # nested markers (article.detail > div#zoom): the innermost one that still holds
        # nearly all the text, so the page's own title and date line stay out
        top = max(_score(el) for el in hinted)
        close = [el for el in hinted if _score(el) >= 0.9 * top]
        return max(close, key=lambda el: len(list(el.iterancestors())))
    for tag in ("article", "main"):
        found = [el for el in body.iter(tag) if _score(el) >= 50]
        if found:
            return max(found, key=_score)
    # Densest block: the element holding the most paragraph text, not the whole page.
    best, best_score = body, -1.0
    for el in body.iter("div", "section", "td"):
        direct = sum(_cjk_len(p.text_content()) for p in el if getattr(p, "tag", None) in ("p", "div", "br", "span"))
        own = _cjk_len(el.text or "") + sum(_cjk_len(c.tail or "") for c in el)
        score = direct + own - 2 * sum(_cjk_len(a.text_content()) for a in el.iter("a"))
        if score > best_score:
            best, best_score = el, score
    return best if best_score >= 50 else body


def _block_text(el) -> str:
    parts: List[str] = []

    def walk(node):
        tag = node.tag if isinstance(node.tag, str) else ""
        block = tag in BLOCK_TAGS
        if block:
            parts.append("\n")
        if tag == "td" or tag == "th":
            parts.append(" ")
        if node.text and tag != "br":
            parts.append(node.text)
        for child in node:
            walk(child)
            if child.tail:
                parts.append(child.tail)
        if block:
            parts.append("\n")

    walk(el)
    return re.sub(r"[ \t\r\f\v]*\n[ \t\r\f\v\n]*", "\n", "".join(parts).replace("\r", ""))
