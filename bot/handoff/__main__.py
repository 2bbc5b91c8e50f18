"""Staff accounts and tickets from the command line.

    python -m bot.handoff add-staff 张三 --role agent        # prints the token once
    python -m bot.handoff rotate-token 张三                  # new token, the old one stops working
    python -m bot.handoff disable-staff 张三
    python -m bot.handoff list-staff
    python -m bot.handoff tickets [--status waiting]

The database is ZWZX_DB_URL (default sqlite:///build/tracker.db), or --db URL.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys

from bot.handoff.store import ROLES, STATUSES, StoreError, get_store


def _fmt(ts):
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.handoff", description="12345 人工转接：工作人员账号与工单")
    parser.add_argument("--db", help="数据库 URL（默认取环境变量 ZWZX_DB_URL，否则 sqlite:///build/tracker.db）")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add-staff", help="新建工作人员账号并打印令牌（只显示一次）")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="agent")
    rotate = sub.add_parser("rotate-token", help="为工作人员重新生成令牌")
    rotate.add_argument("name")
    disable = sub.add_parser("disable-staff", help="停用工作人员账号")
    disable.add_argument("name")
    sub.add_parser("list-staff", help="列出工作人员")
    tickets = sub.add_parser("tickets", help="列出工单")
    tickets.add_argument("--status", choices=STATUSES)
    args = parser.parse_args(argv)

    store = get_store(args.db)
    try:
        if args.command == "add-staff":
            token = store.add_staff(args.name, args.role)
            print(f"已创建工作人员“{args.name.strip()}”（{args.role}）。令牌只显示这一次，请妥善保存：", file=sys.stderr)
            print(token)
        elif args.command == "rotate-token":
            token = store.rotate_token(args.name)
            print(f"已为“{args.name}”生成新令牌（旧令牌已失效）：", file=sys.stderr)
            print(token)
        elif args.command == "disable-staff":
            store.deactivate_staff(args.name)
            print(f"已停用“{args.name}”。")
        elif args.command == "list-staff":
            for s in store.list_staff():
                print(f"{s['name']}\t{s['role']}\t{'启用' if s['active'] else '停用'}\t{_fmt(s['created_at'])}")
        elif args.command == "tickets":
            for t in store.list_tickets([args.status] if args.status else None):
                print(f"#{t['id']}\t{t['status']}\t{t['reason']}\t{t['channel']}\t{t['sender_id']}\t"
                      f"{_fmt(t['created_at'])}\t{t['assignee'] or '-'}\t{t['summary'][:60]}")
    except StoreError as e:
        print(f"错误：{e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
