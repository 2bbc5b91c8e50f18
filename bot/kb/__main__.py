"""``python -m bot.kb build`` — parse data/policies/ (.txt/.docx/.pdf/.html) into build/ and generate the
NLU lookup/synonym file and the segmenter dictionary from it."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bot.kb.loaders import LoadError
from bot.kb.parser import ParseError
from bot.kb.store import DEFAULT_CONFIG_DIR, DEFAULT_POLICY_DIR, build_kb, kb_path


def parse_command(file: str, with_report: bool = False) -> int:
    """``parse FILE``: {"title", "doc_number", "date", "items": [...]} on stdout (an
    interface scripts outside the project use: keep its keys); a Chinese message on
    stderr and exit status 1 (2 for a file that has no items) otherwise."""
    from bot.kb.store import _read_yaml, parse_file
    from bot.kb.validate import format_report, validate_document

    path = Path(file)
    if not path.is_file():
        print(f"无法读取文件：{file} 不存在或不是文件", file=sys.stderr)
        return 1
    try:
        doc = parse_file(path)
    except LoadError as exc:
        print(f"无法读取文件：{exc}", file=sys.stderr)
        return 1
    except ParseError as exc:
        print(f"无法解析文件 {path.name}：{exc}", file=sys.stderr)
        return 2
    out = {
        "title": doc.title,
        "doc_number": doc.doc_number,
        "date": doc.date,
        "items": [{"number": i.number, "title": i.title, "lead_units": i.lead_units,
                   "responsible_units": i.responsible_units, "references": i.references,
                   "deadlines": i.deadlines} for i in doc.items],
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
    if with_report:
        cfg = _read_yaml(DEFAULT_CONFIG_DIR / "departments.yml")
        print(format_report([validate_document(doc, cfg, path.name)]), file=sys.stderr)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.kb", description="政策知识库构建工具")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="从政策文件构建知识库、检索索引和 NLU 词表")
    b.add_argument("--policies", default=str(DEFAULT_POLICY_DIR))
    b.add_argument("--config", default=str(DEFAULT_CONFIG_DIR))
    b.add_argument("--out", default=None, help="输出目录（默认 build/）")
    b.add_argument("--nlu-out", default=str(Path("data/nlu/generated_kb.yml")))
    p = sub.add_parser("parse", help="解析一个文件（.txt/.docx/.pdf/.html），以 JSON 打印到标准输出")
    p.add_argument("file")
    p.add_argument("--report", action="store_true", help="同时在标准错误输出校验报告")
    s = sub.add_parser("show", help="打印已构建的知识库摘要")
    s.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    if args.cmd == "build":
        from bot.kb.artifacts import write_artifacts
        from bot.kb.store import BuildError
        from bot.kb.validate import format_report

        report: list = []
        try:
            kb = build_kb(Path(args.policies), Path(args.config), report=report)
        except BuildError as exc:
            print(str(exc), file=sys.stderr)
            print("构建失败：知识库未更新。", file=sys.stderr)
            return 1
        except (LoadError, FileNotFoundError) as exc:
            print(f"构建失败：{exc}", file=sys.stderr)
            return 1
        path = kb_path(args.out)
        write_artifacts(kb, path, Path(args.nlu_out))
        for doc in kb.documents:
            print(f"{doc.doc_id}: 《{doc.title}》 {doc.doc_number} {doc.date}，"
                  f"{len(doc.sections)} 个部分，{len(doc.items)} 项工作")
        print(format_report(report))
        print(f"部门 {len(kb.departments)} 个；知识库 {path}（{kb.fingerprint}）")
        return 0
    if args.cmd == "parse":
        return parse_command(args.file, args.report)
    if args.cmd == "show":
        from bot.kb.store import load_kb

        kb = load_kb(kb_path(args.out))
        for doc, item in kb.all_items():
            print(f"{doc.doc_id} {item.label} 牵头:{'、'.join(item.lead_units) or '-'}")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
