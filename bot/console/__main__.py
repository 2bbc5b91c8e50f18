"""Staff console from the command line.

    python -m bot.console create-user 张三 --role agent|supervisor   # asks for the password twice
    python -m bot.console set-password 张三
    python -m bot.console disable-user 张三 | enable-user 张三
    python -m bot.console list-users
    python -m bot.console serve [--host 127.0.0.1] [--port 5080]

Passwords come from the terminal (twice), or — for scripts — from the environment variable
ZWZX_CONSOLE_PASSWORD, or one line on standard input with --password-stdin.
The database is ZWZX_DB_URL (default sqlite:///build/tracker.db), or --db URL.
"""
from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import sys

from bot.console import auth
from bot.console.db import get_db
from bot.handoff.store import ROLES


def _password(args) -> str:
    if os.environ.get("ZWZX_CONSOLE_PASSWORD"):
        return os.environ["ZWZX_CONSOLE_PASSWORD"]
    if getattr(args, "password_stdin", False) or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("密码（至少10个字符）：")
    second = getpass.getpass("再次输入密码：")
    if first != second:
        raise auth.AuthError("两次输入的密码不一致")
    return first


def _fmt(ts):
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.console", description="政务咨询助手 工作人员控制台")
    parser.add_argument("--db", help="数据库 URL（默认取环境变量 ZWZX_DB_URL，否则 sqlite:///build/tracker.db）")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-user", help="新建控制台账号（同时创建或关联人工转接的工作人员账号）")
    create.add_argument("name")
    create.add_argument("--role", choices=ROLES, default="agent")
    create.add_argument("--password-stdin", action="store_true", help="从标准输入读取一行作为密码")
    create.add_argument("--staff-token", help="已有人工转接账号时，提供其当前令牌以关联（否则会重新生成令牌）")
    setpw = sub.add_parser("set-password", help="重设密码（同时注销该账号的所有会话）")
    setpw.add_argument("name")
    setpw.add_argument("--password-stdin", action="store_true")
    dis = sub.add_parser("disable-user", help="停用账号（同时停用其人工转接账号）")
    dis.add_argument("name")
    en = sub.add_parser("enable-user", help="重新启用控制台账号")
    en.add_argument("name")
    sub.add_parser("list-users", help="列出控制台账号")
    srv = sub.add_parser("serve", help="启动控制台网站")
    srv.add_argument("--host", default=os.environ.get("ZWZX_CONSOLE_HOST", "127.0.0.1"))
    srv.add_argument("--port", type=int, default=int(os.environ.get("ZWZX_CONSOLE_PORT", "5080")))
    args = parser.parse_args(argv)

    if args.db:
        os.environ["ZWZX_DB_URL"] = args.db
    db = get_db(args.db)
    try:
        if args.command == "create-user":
            password = _password(args)
            user, how = auth.create_user(db, args.name, args.role, password, staff_token=args.staff_token)
            auth.log(db, "cli", "create_user", user.name, {"role": user.role, "staff_account": how})
            note = {"created": "已同时创建人工转接工作人员账号",
                    "linked": "已关联已有的人工转接工作人员账号",
                    "rotated": "已关联已有的人工转接工作人员账号，并重新生成了其令牌（旧令牌已失效）"}[how]
            print(f"已创建控制台账号“{user.name}”（{user.role}）；{note}。")
        elif args.command == "set-password":
            auth.set_password(db, args.name, _password(args))
            auth.log(db, "cli", "set_password", args.name)
            print(f"已为“{args.name}”重设密码，其已登录的会话均已注销。")
        elif args.command in ("disable-user", "enable-user"):
            active = args.command == "enable-user"
            auth.set_active(db, args.name, active)
            auth.log(db, "cli", "enable_user" if active else "disable_user", args.name)
            print(f"已{'启用' if active else '停用'}“{args.name}”。")
        elif args.command == "list-users":
            for u in auth.list_users(db):
                print(f"{u['name']}\t{u['role']}\t{'启用' if u['active'] else '停用'}\t"
                      f"创建于 {_fmt(u['created_at'])}\t最近登录 {_fmt(u['last_login_at'])}")
        elif args.command == "serve":
            from bot.console.app import serve
            print(f"工作人员控制台：http://{args.host}:{args.port}/", flush=True)
            serve(args.host, args.port)
    except auth.AuthError as e:
        print(f"错误：{e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
