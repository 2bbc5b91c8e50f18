"""Conversation index, filters, annotations, dashboard numbers, unanswered-question groups,
NLU export and CSV/JSONL export — over events written by Rasa's own SQLTrackerStore into a
real SQLite file and (same tests) a PostgreSQL schema."""
import csv
import datetime as dt
import io
import json
import uuid

import pytest
import sqlalchemy as sa

from bot.console import annotations, dashboard, exports, gaps
from bot.console.conversations import ConversationIndex, load_transcript, local_tz
from bot.console.db import Database
from bot.console.demo import card, seed, turn
from bot.console.filters import Annotations, Filter, FilterError

DAY0 = dt.date(2024, 5, 20)
from tests.servers import PG_URL
from tests.servers import pg_available as _pg_available


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('console') / 'tracker.db'}"
        schema = None
    else:
        if not _pg_available():
            pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")
        schema = f"console_test_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    extra = {
        "late-night": turn("凌晨还能咨询吗", "ask_policy", 0.66, "可以。", card("answer"),
                           dt.datetime.combine(DAY0, dt.time(2, 15), tzinfo=local_tz()).timestamp(),
                           channel="wechat"),
    }
    seed(url, day0=DAY0, days=14, extra=extra)
    db = Database(url)
    db.ensure_tables()
    yield db
    db.engine.dispose()
    if schema:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture()
def index(store):
    return ConversationIndex(store)


def ids(convs):
    return {c.sender_id for c in convs}


def test_index_reads_rasa_events(index):
    convs = {c.sender_id: c for c in index.all()}
    assert len(convs) == 39  # 38 demo conversations + late-night
    h = convs["demo-handoff-1"]
    assert h.kinds == {"answer", "handoff"}
    assert h.n_staff == 2 and h.n_citizen == 3
    assert h.feedback_down == 1 and h.turns[0].feedback == "down"
    assert "ningxiang-2021#13" in h.items
    assert convs["demo-oos-1"].channels == {"wechat"}
    assert convs["demo-fallback-1"].min_confidence == pytest.approx(0.31)
    # feedback messages are not turns
    assert [t.text for t in convs["demo-answer-2"].turns] == ["政策解读怎么做", "谁负责？"]


def test_index_is_incremental(index, store):
    before = len(index.all())
    from bot.console.demo import tracker_store, write
    import asyncio
    new = {"late-arrival": turn("新来的问题", "ask_policy", 0.9, "回答", card("fallback"),
                                dt.datetime.combine(DAY0, dt.time(9), tzinfo=local_tz()).timestamp())}
    ts = tracker_store(store.url)
    asyncio.run(write(ts, new))
    ts.engine.dispose()
    convs = index.all()
    assert len(convs) == before + 1
    assert "fallback" in index.get("late-arrival").kinds
    # clean up for the other tests of this module
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE sender_id = 'late-arrival'"))


@pytest.mark.parametrize("args, expected", [
    ({"kind": "handoff"}, {"demo-handoff-1", "demo-pii-1"}),
    ({"kind": "fallback"}, {"demo-fallback-1", "demo-fallback-2", "demo-fallback-3"}),
    ({"kind": "clarify"}, {"demo-clarify-1", "demo-xss-1"}),
    ({"kind": "out_of_scope"}, {"demo-oos-1"}),
    ({"channel": "wechat"}, {"demo-oos-1", "late-night"}),
    ({"intent": "request_human"}, {"demo-handoff-1"}),
    ({"negative": "1"}, {"demo-fallback-1", "demo-handoff-1"}),
    ({"low_confidence": "0.4"}, {"demo-fallback-1", "demo-fallback-2", "demo-fallback-3"}),
    ({"q": "路灯"}, {"demo-fallback-1", "demo-fallback-2", "demo-fallback-3"}),
    ({"q": "路灯 报修"}, {"demo-fallback-2", "demo-fallback-3"}),
    ({"q": "SCRIPT"}, {"demo-xss-1"}),
    ({"q": "公开目录"}, {"demo-handoff-1"}),          # a later message of the conversation
    ({"kind": "handoff", "q": "电话"}, {"demo-pii-1"}),
    ({"date_from": DAY0.isoformat(), "date_to": DAY0.isoformat(), "kind": "fallback"}, {"demo-fallback-1"}),
    ({"date_from": (DAY0 - dt.timedelta(days=3)).isoformat(),
      "date_to": (DAY0 - dt.timedelta(days=2)).isoformat(), "kind": "fallback"},
     {"demo-fallback-2", "demo-fallback-3"}),
])
def test_filters(index, args, expected):
    assert ids(Filter.from_args(args).apply(index.all())) == expected


def test_item_and_department_filters(index):
    by_item = ids(Filter.from_args({"item": "ningxiang-2021#13"}).apply(index.all()))
    assert "demo-handoff-1" in by_item and "demo-answer-1" not in by_item
    by_dept = ids(Filter.from_args({"department": "市数据资源中心"}).apply(index.all()))
    assert "demo-answer-1" in by_dept and "demo-handoff-1" not in by_dept


def test_date_filter_uses_local_time(index):
    # 02:15 Beijing time on DAY0 is the previous day in UTC: it belongs to DAY0 here
    only_day0 = ids(Filter.from_args({"date_from": DAY0.isoformat(), "date_to": DAY0.isoformat(),
                                      "channel": "wechat"}).apply(index.all()))
    assert only_day0 == {"late-night"}


def test_tag_and_reviewed_filters(index, store):
    assert annotations.add_tag(store, "demo-fallback-2", "知识库缺失", "王芳")
    assert not annotations.add_tag(store, "demo-fallback-2", "知识库缺失", "李明")  # already there
    first_event = index.get("demo-fallback-3").turns[0].event_id
    assert annotations.add_tag(store, "demo-fallback-3", "答错", "王芳", event_id=first_event)
    annotations.set_reviewed(store, "demo-fallback-1", "王芳", True)
    ann = annotations.load_annotations(store)
    assert ids(Filter.from_args({"tag": "知识库缺失"}).apply(index.all(), ann)) == {"demo-fallback-2"}
    assert ids(Filter.from_args({"tag": "答错"}).apply(index.all(), ann)) == {"demo-fallback-3"}  # message tag
    assert ids(Filter.from_args({"kind": "fallback", "reviewed": "yes"}).apply(index.all(), ann)) == {"demo-fallback-1"}
    assert ids(Filter.from_args({"kind": "fallback", "reviewed": "no"}).apply(index.all(), ann)) == \
        {"demo-fallback-2", "demo-fallback-3"}
    annotations.set_reviewed(store, "demo-fallback-1", "王芳", False)
    assert annotations.remove_tag(store, "demo-fallback-2", "知识库缺失")
    with pytest.raises(annotations.AnnotationError):
        annotations.add_tag(store, "demo-fallback-2", "<b>", "王芳")


@pytest.mark.parametrize("args, message", [
    ({"date_from": "2024-13-01"}, "不是有效日期"),
    ({"date_from": "2024-05-02", "date_to": "2024-05-01"}, "不能晚于"),
    ({"kind": "nonsense"}, "未知的回答类型"),
    ({"low_confidence": "abc"}, "置信度阈值"),
    ({"low_confidence": "1.5"}, "置信度阈值"),
    ({"reviewed": "maybe"}, "已复核"),
])
def test_bad_filter_values(args, message):
    with pytest.raises(FilterError, match=message):
        Filter.from_args(args)


def test_filter_round_trips_through_query_args():
    f = Filter.from_args({"kind": "fallback", "negative": "on", "low_confidence": "0.5", "q": "路灯"})
    assert Filter.from_args(f.to_args()) == f


def test_transcript(store):
    msgs = load_transcript(store, "demo-handoff-1")
    whos = [m["who"] for m in msgs]
    assert whos == ["citizen", "bot", "card", "feedback", "citizen", "bot", "card", "staff", "citizen", "staff"]
    card_msg = msgs[2]
    assert card_msg["kind"] == "answer" and card_msg["feedback"] == "down"
    assert card_msg["citations"][0]["item"] == 13
    assert msgs[0]["intent"] == "ask_policy" and msgs[0]["confidence"] == pytest.approx(0.47)
    assert msgs[7]["staff"] == "王芳"


def test_dashboard_numbers(index):
    data = dashboard.compute(index.all(), DAY0 - dt.timedelta(days=13), DAY0, ratings=[5, 4, 5])
    s = data["stats"]
    assert s["fallback"] == 3 and s["handoff"] == 2
    assert s["feedback_down"] == 2 and s["feedback_up"] >= 3
    assert s["rating_avg"] == pytest.approx(14 / 3)
    assert sum(data["per_day"]["messages"]) == s["messages"]
    assert data["hours"][2] == 1  # the 02:15 message, local time
    assert data["top_items"][0][1] >= data["top_items"][-1][1]
    for name in ("per_day", "kinds", "cited", "departments", "hours"):
        assert data["charts"][name].startswith("<svg") and "<rect" in data["charts"][name] or \
            "<polyline" in data["charts"][name]


def test_gap_groups_put_similar_questions_together(index):
    turns = gaps.gap_turns(index.all())
    texts = {t.text for t in turns}
    assert "我家门口的路灯坏了找谁修" in texts           # fallback + 👎
    assert "公开" in texts                              # clarify
    assert "基层政务公开标准化是什么意思" in texts      # answered but 👎
    assert "政府网站集约化建设有什么要求？" not in texts  # answered and 👍
    groups = gaps.group_turns(turns)
    top = groups[0]
    assert {t.text for t in top.turns} == {"我家门口的路灯坏了找谁修", "路灯坏了应该找哪个部门报修",
                                           "小区路灯不亮了怎么报修"}
    assert top.reasons == {"fallback": 3, "down": 1}


def test_nlu_export_is_valid_rasa_yaml_and_masked():
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader
    text = gaps.nlu_yaml("ask_streetlight", ["路灯坏了找谁修", "路灯坏了找谁修", "我电话13812345678，路灯不亮",
                                             "[链接](http://x) 路灯", "- 以横线开头的问题: 冒号"])
    data = RasaYAMLReader().reads(text)
    examples = [m.get("text") for m in data.intent_examples]
    assert all(m.get("intent") == "ask_streetlight" for m in data.intent_examples)
    assert examples[0] == "路灯坏了找谁修" and len(examples) == 4
    assert "13812345678" not in text and "138****5678" in text
    assert not data.entity_examples  # citizen brackets never become entity annotations
    with pytest.raises(gaps.ExportError):
        gaps.nlu_yaml("坏 名字", ["x"])
    with pytest.raises(gaps.ExportError):
        gaps.nlu_yaml("ask_x", [])


def test_exports_mask_by_default(index, store):
    convs = Filter.from_args({"q": "身份证"}).apply(index.all())
    ann = Annotations({}, set())
    masked_csv = exports.export(store, convs, ann, "csv", masked=True)
    assert "13812345678" not in masked_csv and "43012419900307001X" not in masked_csv
    assert "138****5678" in masked_csv and "z***@example.com" in masked_csv
    rows = list(csv.reader(io.StringIO(masked_csv.lstrip("\ufeff"))))
    assert rows[0][:4] == ["会话ID", "事件ID", "时间", "发言方"]
    assert any(r[3] == "市民" for r in rows[1:])
    raw_jsonl = exports.export(store, convs, ann, "jsonl", masked=False)
    record = json.loads(raw_jsonl.splitlines()[0])
    assert record["masked"] is False
    assert "43012419900307001X" in record["messages"][0]["text"]


def test_csv_cells_cannot_run_formulas(index, store):
    assert exports._cell("=HYPERLINK(\"x\")").startswith("'=")
    assert exports._cell("+86 138") == "'+86 138"
    assert exports._cell("正常文本") == "正常文本"


def test_accounts_sessions_and_audit_on_this_database(store):
    """The auth tables work on SQLite and PostgreSQL alike."""
    from bot.console import auth
    from bot.handoff.store import get_store

    cfg = auth.AuthConfig(max_failures=2)
    user, how = auth.create_user(store, "测试员", "agent", "tester-pass-123")
    assert how == "created" and get_store(store.url).authenticate(user.staff_token)["name"] == "测试员"
    with pytest.raises(auth.AuthError, match="已存在"):
        auth.create_user(store, "测试员", "agent", "tester-pass-123")
    with pytest.raises(auth.AuthError, match="至少"):
        auth.create_user(store, "短密码", "agent", "short")
    assert auth.authenticate(store, cfg, "测试员", "tester-pass-123").name == "测试员"
    cookie, csrf = auth.start_session(store, user)
    sess = auth.load_session(store, cfg, cookie)
    assert sess.user.name == "测试员" and sess.csrf_token == csrf
    assert auth.load_session(store, cfg, cookie + "x") is None
    assert auth.load_session(store, cfg, cookie, now=sess.last_seen + cfg.idle_timeout + 1) is None
    assert auth.load_session(store, cfg, cookie) is None  # the expired session was deleted
    for _ in range(2):
        with pytest.raises(auth.AuthError):
            auth.authenticate(store, cfg, "测试员", "wrong-password")
    with pytest.raises(auth.AuthError, match="锁定"):
        auth.authenticate(store, cfg, "测试员", "tester-pass-123")
    auth.log(store, "测试员", "tag", "demo-answer-1", {"tag": "答错"})
    rows, total = auth.audit_entries(store, actor="测试员")
    assert total == 1 and rows[0]["action"] == "tag" and json.loads(rows[0]["detail"]) == {"tag": "答错"}
    # an existing staff account is linked with its token, or its token is rotated
    token = get_store(store.url).add_staff("老员工", "supervisor")
    linked, how = auth.create_user(store, "老员工", "supervisor", "old-staff-pass-1", staff_token=token)
    assert how == "linked" and linked.staff_token == token
    with pytest.raises(auth.AuthError, match="角色"):
        get_store(store.url).add_staff("角色不同", "agent")
        auth.create_user(store, "角色不同", "supervisor", "different-role-1")
    auth.set_active(store, "老员工", False)
    assert get_store(store.url).authenticate(token) is None
    with pytest.raises(auth.AuthError, match="停用"):
        auth.authenticate(store, cfg, "老员工", "old-staff-pass-1")
    auth.set_active(store, "老员工", True)
    assert auth.authenticate(store, cfg, "老员工", "old-staff-pass-1").name == "老员工"
