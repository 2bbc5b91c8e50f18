"""``python -m bot.kb build`` — parse data/policies/*.txt into build/ and generate the
NLU lookup/synonym file and the segmenter dictionary from it."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bot.kb.generate import write_nlu_files, write_user_dict
from bot.kb.store import DEFAULT_CONFIG_DIR, DEFAULT_POLICY_DIR, build_kb, kb_path, save_kb


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.kb", description="政策知识库构建工具")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="从政策文件构建知识库、检索索引和 NLU 词表")
    b.add_argument("--policies", default=str(DEFAULT_POLICY_DIR))
    b.add_argument("--config", default=str(DEFAULT_CONFIG_DIR))
    b.add_argument("--out", default=None, help="输出目录（默认 build/）")
    b.add_argument("--nlu-out", default=str(Path("data/nlu/generated_kb.yml")))
    s = sub.add_parser("show", help="打印已构建的知识库摘要")
    s.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    if args.cmd == "build":
        from bot.nlp.segmenter import Segmenter
        from bot.retrieval.search import build_index

        kb = build_kb(Path(args.policies), Path(args.config))
        path = kb_path(args.out)
        save_kb(kb, path)
        words = write_user_dict(kb, path.parent / "pkuseg_user_dict.txt")
        seg = Segmenter(words)
        index = build_index(kb, seg)
        (path.parent / "index.json").write_text(json.dumps(index, ensure_ascii=False), encoding="utf-8")
        write_nlu_files(kb, Path(args.nlu_out))
        for doc in kb.documents:
            print(f"{doc.doc_id}: 《{doc.title}》 {doc.doc_number} {doc.date}，"
                  f"{len(doc.sections)} 个部分，{len(doc.items)} 项工作")
        print(f"部门 {len(kb.departments)} 个；知识库 {path}（{kb.fingerprint}）")
        return 0
    if args.cmd == "show":
        from bot.kb.store import load_kb

        kb = load_kb(kb_path(args.out))
        for doc, item in kb.all_items():
            print(f"{doc.doc_id} {item.label} 牵头:{'、'.join(item.lead_units) or '-'}")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
