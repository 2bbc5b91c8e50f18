"""Issue 13: the same document as .txt, .docx, .pdf and portal .html gives the same
knowledge base; bad files are refused with a Chinese message naming them and the live
knowledge base is left as it was; ``python -m bot.kb parse FILE`` keeps its interface;
every build prints a validation report and fails with it when a document has no items."""
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from bot.kb import __main__ as kb_cli
from bot.kb.loaders import LoadError, html_article_text, load_text
from bot.kb.store import BuildError, DEFAULT_CONFIG_DIR, build_kb, parse_file
from bot.kb.validate import format_report, validate_document
from bot.kb.parser import parse_document
from tests import kb_files
from tests.conftest import ROOT, SEED

SECOND = ROOT / "tests" / "fixtures" / "policies" / "taojiang-2022.txt"
SOURCES = {"ningxiang-2021": SEED, "taojiang-2022": SECOND}
TITLES = {"ningxiang-2021": "宁乡市2021年政务公开工作要点", "taojiang-2022": "桃江县2022年政务公开工作要点"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{doc_id: {".txt": path, ".docx": path, ".pdf": path, ".html": path}}"""
    work = tmp_path_factory.mktemp("formats")
    font = kb_files.cjk_font(work)
    if font is None:
        pytest.skip("no CJK font for writing the test PDF (make browser installs fonts-noto-cjk)")
    out = {}
    for doc_id, src in SOURCES.items():
        text = src.read_text(encoding="utf-8")
        d = work / doc_id
        d.mkdir()
        out[doc_id] = {
            ".txt": shutil.copy(src, d / f"{doc_id}.txt"),
            ".docx": kb_files.write_docx(text, d / f"{doc_id}.docx"),
            ".pdf": kb_files.write_pdf(text, d / f"{doc_id}.pdf", font),
            ".html": kb_files.write_html(text, d / f"{doc_id}.html", TITLES[doc_id]),
        }
    out["font"] = font
    out["work"] = work
    return out


def summary(doc):
    return {
        "title": doc.title, "doc_number": doc.doc_number, "date": doc.date, "issuer": doc.issuer,
        "sections": [(s.numeral, s.title, s.items) for s in doc.sections],
        "items": [(i.number, i.title, i.lead_units, i.responsible_units, i.references, i.deadlines,
                   i.counts) for i in doc.items],
    }


@pytest.mark.parametrize("doc_id", list(SOURCES))
@pytest.mark.parametrize("suffix", [".docx", ".pdf", ".html"])
def test_every_format_gives_the_same_document(files, doc_id, suffix):
    expected = summary(parse_file(files[doc_id][".txt"]))
    got = summary(parse_file(files[doc_id][suffix]))
    assert got == expected
    assert len(got["items"]) == {"ningxiang-2021": 19, "taojiang-2022": 3}[doc_id]


def test_pinned_facts_survive_every_format(files):
    for suffix in (".txt", ".docx", ".pdf", ".html"):
        doc = parse_file(files["ningxiang-2021"][suffix])
        assert [i.number for i in doc.items] == list(range(1, 20)), suffix
        assert doc.item(6).lead_units == ["市卫生健康局", "市医保局"], suffix
        assert "市场准入负面清单" in doc.item(3).body, suffix  # page break rejoined
        assert "湘财税〔2021〕3号" in doc.item(15).references, suffix
        assert "2021年底前" in doc.item(12).deadlines, suffix
        second = parse_file(files["taojiang-2022"][suffix])
        assert "12个乡镇供水工程信息公示" in second.item(1).body, suffix
        assert second.item(2).lead_units == ["县林业局", "县财政局"], suffix


def test_html_takes_the_article_not_the_page(files):
    text = load_text(files["ningxiang-2021"][".html"])
    for chrome in ("首页", "当前位置", "相关文件", "网站标识码", "浏览次数", "分享到", "统计代码", "搜索"):
        assert chrome not in text
    assert text.splitlines()[0] == "宁乡市政务公开政务服务工作领导小组办公室"


def test_html_without_content_markers_uses_the_densest_block():
    paras = "".join(f"<p>{p}</p>" for p in kb_files.paragraphs(SECOND.read_text(encoding="utf-8")))
    page = ("<html><body><div id='top'><a href='/'>首页</a> <a href='/x'>政务公开</a> <a href='/y'>办事服务</a></div>"
            "<div class='l'><ul>" + "".join(f"<li><a href='/{n}'>其他通知标题第{n}篇</a></li>" for n in range(20))
            + "</ul></div><div class='r'>" + paras + "</div><div>版权所有 某县人民政府</div></body></html>")
    text = html_article_text(page)
    assert text.startswith("桃江县人民政府办公室") and "其他通知" not in text and "版权所有" not in text
    assert len(parse_document(text, "t").items) == 3


def test_pdf_page_numbers_and_page_breaks(files):
    path = files["work"] / "numbered.pdf"
    kb_files.write_pdf_with_page_numbers(SEED.read_text(encoding="utf-8"), path, files["font"])
    text = load_text(path)
    assert "- 2 -" not in text and "- 1 -" not in text
    assert summary(parse_file(path, path.read_bytes())) == summary(parse_file(files["ningxiang-2021"][".txt"]))


def test_build_takes_all_formats(files, tmp_path, capsys):
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(files["ningxiang-2021"][".docx"], policies)
    shutil.copy(files["taojiang-2022"][".pdf"], policies)
    out = tmp_path / "build"
    rc = kb_cli.main(["build", "--policies", str(policies), "--out", str(out), "--nlu-out", str(tmp_path / "gen.yml")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "知识库校验报告" in printed and "结果：通过" in printed
    assert "【taojiang-2022】" in printed and "部门配置中没有的单位：县水利局" in printed
    kb = json.loads((out / "kb.json").read_text(encoding="utf-8"))
    assert [(d["doc_id"], len(d["items"])) for d in kb["documents"]] == [("ningxiang-2021", 19), ("taojiang-2022", 3)]
    assert (out / "index.json").exists() and "县水利局" in (tmp_path / "gen.yml").read_text(encoding="utf-8")


def test_two_files_with_one_id_are_refused(files, tmp_path):
    shutil.copy(files["taojiang-2022"][".txt"], tmp_path)
    shutil.copy(files["taojiang-2022"][".html"], tmp_path)
    with pytest.raises(LoadError, match="文件名相同"):
        build_kb(tmp_path, DEFAULT_CONFIG_DIR)


# ------------------------------------------------------------------ bad files
def _zip_bomb(path, size):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        with zf.open("word/document.xml", "w") as fh:
            chunk = b"\0" * (1 << 20)
            for _ in range(size >> 20):
                fh.write(chunk)
    return path


def _bad_files(files, d):
    (d / "empty.txt").write_bytes(b"")
    (d / "blank.docx").write_bytes(b"")
    (d / "tool.exe").write_bytes(b"MZ\x90\x00")
    (d / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    (d / "photo.pdf").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    shutil.copy(files["taojiang-2022"][".pdf"], d / "renamed.docx")
    with open(d / "huge.txt", "wb") as fh:
        fh.truncate(21 * 1024 * 1024)
    kb_files.write_image_pdf(d / "scan.pdf")
    _zip_bomb(d / "bomb.docx", 120 << 20)
    _zip_bomb(d / "small-bomb.docx", 8 << 20)
    (d / "notes.txt").write_text("会议纪要\n今天讨论了一些事情。\n", encoding="utf-8")
    return {
        "empty.txt": "文件是空的", "blank.docx": "文件是空的", "tool.exe": "不支持的文件类型",
        "old.doc": "另存为 .docx", "photo.pdf": "文件内容与扩展名 .pdf 不符", "renamed.docx": "文件内容与扩展名 .docx 不符",
        "huge.txt": "文件过大", "scan.pdf": "PDF 没有文字层", "bomb.docx": "压缩炸弹",
        "small-bomb.docx": "压缩炸弹", "notes.txt": "没有找到编号的工作事项",
    }


def test_bad_files_refused_and_live_kb_untouched(files, tmp_path, capsys):
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    expected = _bad_files(files, bad_dir)
    # a live knowledge base built from the good document
    live = tmp_path / "live"
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(SEED, good)
    nlu = tmp_path / "gen.yml"
    assert kb_cli.main(["build", "--policies", str(good), "--out", str(live), "--nlu-out", str(nlu)]) == 0
    before = {p.name: p.read_bytes() for p in live.iterdir()}
    nlu_before = nlu.read_bytes()
    capsys.readouterr()
    for name, message in expected.items():
        policies = tmp_path / f"try-{name}"
        shutil.copytree(good, policies)
        shutil.copy(bad_dir / name, policies / name)
        rc = kb_cli.main(["build", "--policies", str(policies), "--out", str(live), "--nlu-out", str(nlu)])
        err = capsys.readouterr().err
        assert rc == 1, name
        assert name in err and message in err and "知识库未更新" in err, (name, err)
        assert {p.name: p.read_bytes() for p in live.iterdir()} == before, name
        assert nlu.read_bytes() == nlu_before
        shutil.rmtree(policies)


def test_loader_messages_name_the_file(files, tmp_path):
    expected = _bad_files(files, tmp_path)
    for name, message in expected.items():
        if name == "notes.txt":
            continue
        with pytest.raises(LoadError) as err:
            load_text(tmp_path / name)
        assert str(err.value).startswith(name) and message in str(err.value)


def test_gbk_text_file(tmp_path):
    path = tmp_path / "taojiang-2022.txt"
    path.write_bytes(SECOND.read_text(encoding="utf-8").encode("gb18030"))
    assert summary(parse_file(path)) == summary(parse_file(SECOND))


# ------------------------------------------------------------------ parse FILE (kept interface)
def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "bot.kb", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_parse_cli_prints_the_document(files):
    res = _cli("parse", str(files["ningxiang-2021"][".pdf"]))
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data) == {"title", "doc_number", "date", "items"}
    assert data["title"] == "宁乡市2021年政务公开工作要点"
    assert data["doc_number"] == "宁政务办发〔2021〕3号" and data["date"] == "2021年8月3日"
    assert len(data["items"]) == 19
    assert set(data["items"][0]) == {"number", "title", "lead_units", "responsible_units", "references", "deadlines"}
    item15 = data["items"][14]
    assert item15["number"] == 15 and "湘财税〔2021〕3号" in item15["references"]
    assert item15["responsible_units"][0] == "市行政审批服务局"
    txt = json.loads(_cli("parse", str(SEED)).stdout)
    assert txt == data


def test_parse_cli_refuses_unreadable_files(files, tmp_path):
    scan = kb_files.write_image_pdf(tmp_path / "扫描件.pdf")
    for path, message in ((scan, "PDF 没有文字层"), (tmp_path / "missing.docx", "不存在"),
                          (ROOT / "Makefile", "不支持的文件类型")):
        res = _cli("parse", str(path))
        assert res.returncode != 0 and res.stdout == ""
        assert message in res.stderr and path.name in res.stderr


# ------------------------------------------------------------------ validation report
def test_validation_report_counts_and_warnings():
    text = ("某县2023年政务公开工作要点\n一、重点\n（一）甲事项。公开甲。《某条例》2023年底前完成。（县甲局牵头，县乙局按职责分工负责）\n"
            "（二）乙事项。公开乙，湘政办发〔2022〕1号。\n（四）丁事项。\n")
    doc = parse_document(text, "mou")
    rep = validate_document(doc, {"departments": {"县甲局": []}}, "mou.txt")
    assert rep.items == 3 and rep.items_without_units == [2, 3]
    assert rep.unknown_units == ["县乙局"]
    assert rep.references == 2 and rep.deadlines == 1
    assert any("编号不连续" in w and "二" in w and "四" in w for w in rep.warnings)
    assert any("没有正文" in w for w in rep.warnings)
    report = format_report([rep])
    assert "工作事项：3 项" in report and "无责任单位的事项：2、3" in report and "结果：通过" in report


def test_build_fails_with_the_report_when_a_document_has_no_items(tmp_path):
    shutil.copy(SECOND, tmp_path)
    (tmp_path / "memo.html").write_text("<html><body><div id='zoom'><p>这是一份会议通知，" + "请各单位按时参加会议。" * 8
                                        + "</p></div></body></html>", encoding="utf-8")
    with pytest.raises(BuildError) as err:
        build_kb(tmp_path, DEFAULT_CONFIG_DIR)
    text = str(err.value)
    assert "知识库校验报告" in text and "【memo】" in text and "没有找到编号的工作事项" in text
    assert "【taojiang-2022】" in text and "工作事项：3 项" in text and "结果：失败" in text
