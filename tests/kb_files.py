"""Real .docx / .pdf / .html files made from a policy document's text, for the loader
tests (issue 13): python-docx writes the Word file, fpdf2 the PDF (with a CJK font from
the system: fonts-noto-cjk, which `make browser` installs), the HTML is a portal article
page with navigation, breadcrumbs, a sidebar and a footer around the article."""
from __future__ import annotations

import glob
import html
from pathlib import Path
from typing import List, Optional

FONT_GLOBS = ["/usr/share/fonts/**/NotoSansCJK-Regular.ttc", "/usr/share/fonts/**/NotoSerifCJK-Regular.ttc",
              "/usr/share/fonts/**/*CJK*.ttc", "/usr/share/fonts/**/*CJK*.otf",
              "/usr/share/fonts/**/wqy-*.ttc"]


def paragraphs(text: str) -> List[str]:
    return [p.strip() for p in text.replace("\r\n", "\n").split("\n") if p.strip()]


def cjk_font(workdir: Path) -> Optional[Path]:
    """A single-face CJK font file fpdf2 can embed (the SC face of a .ttc collection)."""
    for pattern in FONT_GLOBS:
        for found in sorted(glob.glob(pattern, recursive=True)):
            if found.endswith(".otf"):
                return Path(found)
            from fontTools.ttLib import TTCollection

            coll = TTCollection(found)
            faces = [f for f in coll.fonts if " SC" in (f["name"].getDebugName(1) or "")] or coll.fonts
            out = Path(workdir) / "cjk-font.otf"
            faces[0].save(str(out))
            return out
    return None


def write_docx(text: str, path: Path) -> Path:
    import docx
    from docx.shared import Pt

    document = docx.Document()
    for para in paragraphs(text):
        p = document.add_paragraph()
        # the closing unit bracket in a run of its own, as Word often stores it
        cut = para.rfind("〔") if para.endswith("〕") else para.rfind("[") if para.endswith("]") else -1
        if cut > 0:
            p.add_run(para[:cut])
            run = p.add_run(para[cut:])
            run.font.size = Pt(10)
        else:
            p.add_run(para)
    document.save(str(path))
    return path


def write_pdf(text: str, path: Path, font: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    pdf.add_font("cjk", fname=str(font))
    pdf.set_font("cjk", size=12)
    for para in paragraphs(text):
        pdf.multi_cell(0, 7, para, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path




def write_pdf_with_page_numbers(text: str, path: Path, font: Path) -> Path:
    from fpdf import FPDF

    class P(FPDF):
        def footer(self):
            self.set_y(-15)
            self.set_font("cjk", size=10)
            self.cell(0, 10, f"- {self.page_no()} -", align="C")

    pdf = P(format="A4")
    pdf.add_font("cjk", fname=str(font))
    pdf.set_font("cjk", size=12)
    pdf.add_page()
    for para in paragraphs(text):
        pdf.multi_cell(0, 7, para, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def write_image_pdf(path: Path) -> Path:
    """A 'scanned' page: an image and no text layer."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (600, 800), "white")
    draw = ImageDraw.Draw(img)
    for y in range(60, 760, 24):
        draw.rectangle([50, y, 550, y + 10], fill="black")
    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.image(img, x=10, y=10, w=190)
    pdf.output(str(path))
    return path


def portal_html(text: str, title: str) -> str:
    body = "\n".join(f"<p style=\"text-indent:2em\">{html.escape(p)}</p>" for p in paragraphs(text))
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)}_政务公开_门户网站</title>
<style>.nav a {{ margin: 0 8px }}</style>
<script>var _hmt = _hmt || []; document.write("统计代码");</script></head>
<body>
<header class="top"><div class="logo">某市人民政府门户网站</div>
<div class="search"><form><input name="q"><button>搜索</button></form></div></header>
<nav class="nav"><a href="/">首页</a><a href="/zwgk">政务公开</a><a href="/zwfw">政务服务</a>
<a href="/hdjl">互动交流</a><a href="/zjsz">走进本市</a></nav>
<div class="crumbs">当前位置：<a href="/">首页</a> &gt; <a href="/zwgk">政务公开</a> &gt; 政策文件</div>
<div class="wrap">
<aside class="sidebar"><h3>相关文件</h3><ul>
<li><a href="/a/1">关于做好2021年政务公开工作的通知（一）</a></li>
<li><a href="/a/2">关于印发全市政务服务事项清单的通知</a></li>
<li><a href="/a/3">市人民政府办公室关于进一步优化营商环境的实施意见</a></li></ul></aside>
<article class="detail">
<h1 class="title">{html.escape(title)}</h1>
<div class="info">发布时间：2021-08-05 来源：市政府办 浏览次数：<span id="hits">1024</span>
<a href="javascript:window.print()">【打印】</a><a href="#">【关闭】</a></div>
<div class="article-content" id="zoom">
{body}
</div>
<div class="share">分享到：<a href="#">微信</a><a href="#">微博</a></div>
</article></div>
<footer><p>主办：某市人民政府办公室 承办：某市数据资源中心</p>
<p>网站标识码：4301240001 湘ICP备12345678号 湘公网安备43012402000123号</p></footer>
<script src="/js/jquery.min.js"></script>
</body></html>
"""


def write_html(text: str, path: Path, title: str) -> Path:
    path.write_text(portal_html(text, title), encoding="utf-8")
    return path
