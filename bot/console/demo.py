"""Demo conversations written through Rasa's own SQLTrackerStore (real `events` schema), for
tests, screenshots and trying the console without live traffic:

    python -m bot.console.demo [--db sqlite:////tmp/demo.db] [--days 14]

Every conversation is a list of turns; each turn becomes the events Rasa itself would store
(user message with parse data, bot texts, the answer card as a separate bot event, feedback
as a `/feedback{"feedback": "up|down"}` user message, staff messages with metadata.from=staff).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from typing import Any, Dict, List, Optional, Sequence

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.console.conversations import local_tz
from bot.db import db_url as resolve_db_url

DOC = "ningxiang-2021"
DOC_TITLE = "宁乡市2021年政务公开工作要点"


def cite(item: int, title: str, numeral: str) -> Dict[str, Any]:
    return {"doc": DOC, "item": item, "title": title, "label": f"第（{numeral}）项 {title}", "doc_title": DOC_TITLE}


def card(kind: str, citations: Sequence[Dict[str, Any]] = (), departments: Sequence[str] = (),
         **extra) -> Dict[str, Any]:
    out = {"kind": kind, "citations": list(citations), "departments": list(departments)}
    out.update(extra)
    return out


def user(text: str, intent: str, confidence: float, ts: float, channel: str = "rest",
         entities: Optional[List[Dict[str, Any]]] = None) -> UserUttered:
    ents = entities or []
    return UserUttered(text=text, intent={"name": intent, "confidence": confidence}, entities=ents,
                       parse_data={"intent": {"name": intent, "confidence": confidence}, "entities": ents,
                                   "text": text,
                                   "intent_ranking": [{"name": intent, "confidence": confidence}]},
                       timestamp=ts, input_channel=channel)


def feedback(value: str, ts: float, channel: str = "rest") -> UserUttered:
    ents = [{"entity": "feedback", "value": value, "start": 0, "end": 0}]
    return user('/feedback{"feedback": "%s"}' % value, "feedback", 1.0, ts, channel, ents)


def bot(text: Optional[str], ts: float, buttons: Optional[List[Dict[str, str]]] = None,
        custom: Optional[Dict[str, Any]] = None, staff: Optional[str] = None) -> BotUttered:
    data: Dict[str, Any] = {}
    if buttons:
        data["buttons"] = buttons
    if custom:
        data["custom"] = custom
    metadata = {"from": "staff", "staff": staff} if staff else {}
    return BotUttered(text=text, data=data, metadata=metadata, timestamp=ts)


def turn(question: str, intent: str, conf: float, answer: str, answer_card: Dict[str, Any], ts: float,
         channel: str = "rest", fb: Optional[str] = None, buttons=None) -> List[Event]:
    events: List[Event] = [user(question, intent, conf, ts, channel),
                           ActionExecuted("action_answer", timestamp=ts + 0.1),
                           bot(answer, ts + 0.2, buttons=buttons),
                           bot(None, ts + 0.3, custom=answer_card),
                           ActionExecuted("action_listen", timestamp=ts + 0.4)]
    if fb:
        events.append(feedback(fb, ts + 20, channel))
    return events


ITEM12 = cite(12, "全面推行政府网站集约化建设", "十二")
ITEM5 = cite(9, "加大政策解读回应", "九")
ITEM20 = cite(13, "高质量推进基层政务公开标准化规范化", "十三")
DEPT_DATA = "市数据资源中心"
DEPT_GOV = "市行政审批服务局"


def demo_conversations(day0: dt.date, days: int = 14) -> Dict[str, List[Event]]:
    """sender_id → events, spread over `days` days ending on day0."""
    tz = local_tz()

    def at(day_offset: int, hour: int, minute: int = 0) -> float:
        d = day0 - dt.timedelta(days=day_offset)
        return dt.datetime.combine(d, dt.time(hour, minute), tzinfo=tz).timestamp()

    convs: Dict[str, List[Event]] = {}
    convs["demo-answer-1"] = turn("政府网站集约化建设有什么要求？", "ask_policy", 0.93,
                                  "第（十二）项 全面推行政府网站集约化建设……", card("answer", [ITEM12], [DEPT_DATA]),
                                  at(0, 9, 12), fb="up")
    convs["demo-answer-2"] = (turn("政策解读怎么做", "ask_policy", 0.88, "第（九）项 加大政策解读回应……",
                                   card("answer", [ITEM5], [DEPT_GOV]), at(1, 10, 5))
                              + turn("谁负责？", "ask_responsible", 0.81, "牵头单位：市行政审批服务局、市发改局等。",
                                     card("answer", [ITEM5], [DEPT_GOV]), at(1, 10, 7), fb="up"))
    convs["demo-fallback-1"] = turn("我家门口的路灯坏了找谁修", "ask_policy", 0.31,
                                    "抱歉，这个问题我暂时无法回答。您可以拨打12345热线咨询。",
                                    card("fallback"), at(0, 14, 30), fb="down")
    convs["demo-fallback-2"] = turn("路灯坏了应该找哪个部门报修", "ask_policy", 0.28,
                                    "抱歉，这个问题我暂时无法回答。", card("fallback"), at(2, 15, 10))
    convs["demo-fallback-3"] = turn("小区路灯不亮了怎么报修", "ask_policy", 0.35,
                                    "抱歉，这个问题我暂时无法回答。", card("fallback"), at(3, 20, 45))
    convs["demo-clarify-1"] = turn("公开", "ask_policy", 0.42, "您想了解哪一方面的公开？",
                                   card("clarify", [], [], candidates=[ITEM12, ITEM20]), at(1, 16, 0),
                                   buttons=[{"title": ITEM12["label"], "payload": '/ask_policy{"item_ref": "12"}'},
                                            {"title": ITEM20["label"], "payload": '/ask_policy{"item_ref": "13"}'}])
    convs["demo-oos-1"] = turn("明天天气怎么样", "out_of_scope", 0.91, "抱歉，我只能回答宁乡市政务公开工作要点相关的问题。",
                               card("out_of_scope"), at(4, 8, 40), channel="wechat")
    # A handoff: the citizen asks for a person; a staff member answers.
    t = at(0, 11, 0)
    convs["demo-handoff-1"] = (
        turn("基层政务公开标准化是什么意思", "ask_policy", 0.47, "第（十三）项 高质量推进基层政务公开标准化规范化……",
             card("answer", [ITEM20], ["各乡镇（街道）人民政府（办事处）"]), t, fb="down")
        + turn("我要转人工", "request_human", 0.97, "好的，正在为您转接人工服务，请稍候。",
               card("handoff", ticket=1), t + 60)
        + [bot("您好，我是12345热线工作人员，请问有什么可以帮您？", t + 120, staff="王芳"),
           user("我想知道我们乡镇的公开目录在哪里看", "ask_policy", 0.55, t + 150),
           bot("您可以登录宁乡市人民政府门户网站，在“政府信息公开”栏目查看各乡镇的公开目录。", t + 200, staff="王芳")])
    # Personal data and markup in a citizen's message.
    convs["demo-pii-1"] = turn("我的电话13812345678，身份证43012419900307001X，邮箱zhang.san@example.com，请回电",
                               "request_callback", 0.86, "好的，已为您登记回电。", card("handoff", ticket=2),
                               at(1, 9, 30))
    convs["demo-xss-1"] = turn("<script>alert('xss')</script>政务公开在哪里看", "ask_policy", 0.52,
                               "您是想了解第（十二）项吗？", card("clarify", [ITEM12]), at(2, 13, 20))
    # Spread some more ordinary traffic over the period for the charts.
    questions = [("政府网站集约化建设有什么要求", ITEM12, DEPT_DATA), ("政策解读由谁负责", ITEM5, DEPT_GOV),
                 ("基层政务公开怎么推进", ITEM20, DEPT_GOV)]
    for i in range(min(days, 14) * 2):
        q, c, d = questions[i % 3]
        convs[f"demo-traffic-{i:02d}"] = turn(q, "ask_policy", 0.7 + (i % 3) * 0.1, c["label"],
                                              card("answer", [c], [d]), at(i % max(1, days), 8 + (i * 5) % 11, i % 60),
                                              fb="up" if i % 4 == 0 else None)
    return convs


async def write(store: SQLTrackerStore, convs: Dict[str, List[Event]]) -> None:
    for sender_id, events in convs.items():
        tracker = DialogueStateTracker(sender_id, slots=[])
        first = events[0].timestamp - 1
        tracker.update(ActionExecuted("action_session_start", timestamp=first))
        tracker.update(SessionStarted(timestamp=first))
        tracker.update(ActionExecuted("action_listen", timestamp=first))
        for e in events:
            tracker.update(e)
        await store.save(tracker)


def tracker_store(url: Optional[str] = None) -> SQLTrackerStore:
    """Rasa's SQLTrackerStore on our database URL (the full URL goes in `host`)."""
    return SQLTrackerStore(domain=Domain.empty(), host=resolve_db_url(url))


def seed(url: Optional[str] = None, day0: Optional[dt.date] = None, days: int = 14,
         extra: Optional[Dict[str, List[Event]]] = None) -> Dict[str, List[Event]]:
    convs = demo_conversations(day0 or dt.datetime.now(local_tz()).date(), days)
    if extra:
        convs.update(extra)
    store = tracker_store(url)
    asyncio.run(write(store, convs))
    store.engine.dispose()
    return convs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.console.demo", description="写入演示会话（仅用于演示和测试）")
    parser.add_argument("--db", help="数据库 URL（默认 ZWZX_DB_URL，否则 sqlite:///build/tracker.db）")
    parser.add_argument("--days", type=int, default=14)
    args = parser.parse_args(argv)
    convs = seed(args.db, days=args.days)
    print(f"已写入 {len(convs)} 个演示会话。")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# ------------------------------------------------------------ a console in a subprocess
def free_port(start: int = 5605, end: int = 5699) -> int:
    """A free TCP port on 127.0.0.1 in [start, end] (the range reserved for the console's tests)."""
    import random
    import socket

    ports = list(range(start, end + 1))
    random.shuffle(ports)
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{end}")


class ConsoleProcess:
    """`python -m bot.console serve` on a free port, for tests and screenshots."""

    def __init__(self, db_url: str, log_path, env: Optional[Dict[str, str]] = None, port: Optional[int] = None):
        import os
        import subprocess
        import sys
        import time
        from pathlib import Path

        import requests

        root = Path(__file__).resolve().parents[2]
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = dict(os.environ, PYTHONPATH=str(root), ZWZX_DB_URL=db_url,
                        SQLALCHEMY_SILENCE_UBER_WARNING="1", **(env or {}))
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "bot.console", "serve", "--port", str(self.port)],
                                     cwd=root, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("console exited:\n" + Path(log_path).read_text()[-3000:])
            try:
                if requests.get(self.url + "/healthz", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("console did not start in 60 s")

    def stop(self) -> None:
        import os
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except Exception:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()
