"""The department alias table is written once (data/kb_config/departments.yml, 宁乡's 市… names)
and serves another county's documents (县…) with no edit."""
import yaml

from bot.kb.departments import alias_map, build_department_index, find_departments
from bot.kb.parser import parse_document
from tests.conftest import ROOT

CONFIG = yaml.safe_load((ROOT / "data" / "kb_config" / "departments.yml").read_text(encoding="utf-8"))

COUNTY = """某某县2022年政务公开工作要点

一、加强信息公开
1.做好重大项目信息公开。公开项目审批信息。牵头单位：县发改局；配合单位：县委网信办、县税务局
"""


def test_another_countys_units_inherit_the_aliases_of_the_same_kind_of_unit():
    index = build_department_index([parse_document(COUNTY, "county")], CONFIG)
    assert "发改委" in index["县发改局"]["aliases"] and "县发展和改革局" in index["县发改局"]["aliases"]
    assert "县网信办" in index["县委网信办"]["aliases"] and "市网信办" not in index["县委网信办"]["aliases"]
    assert index["县税务局"]["aliases"] == ["税务局"]           # not configured: prefix stripped only
    assert find_departments("县发改委负责什么", index) == ["县发改局"]
    assert find_departments("发展和改革局有哪些任务", index) == ["县发改局"]


def test_configured_units_no_document_mentions_are_not_listed():
    index = build_department_index([parse_document(COUNTY, "county")], CONFIG)
    assert not [name for name in index if name.startswith("市")]
    assert alias_map(index)["发改局"] == "县发改局"


def test_a_units_core_with_a_word_pointing_at_a_body_names_it():
    index = {"县医保局": {"aliases": ["医保局"], "generic": False, "items": []},
             "县市场监管局": {"aliases": [], "generic": False, "items": []},
             "县直相关单位": {"aliases": [], "generic": True, "items": []}}
    assert find_departments("医保那边要干哪些活", index) == ["县医保局"]
    assert find_departments("市场监管这边负责什么", index) == ["县市场监管局"]
    # the core alone, or with a word that is not about a body, is a topic
    assert find_departments("医保报销比例是多少", index) == []
    assert find_departments("医保方面的信息会公开吗", index) == []


def test_a_units_name_with_one_wrong_character_inside_is_still_that_unit():
    index = build_department_index([parse_document(COUNTY, "county")], CONFIG)
    assert find_departments("县发该局负责哪些事", index) == ["县发改局"]      # 改 typed as 该
    assert find_departments("县税物局要做什么", index) == ["县税务局"]
    # the place or the kind of body wrong, or two characters off: another body, not a typo
    assert find_departments("县发该厅负责什么", index) == []
    assert find_departments("县法该局负责什么", index) == []
    # a name written correctly is found as before, and no typo search runs beside it
    assert find_departments("县发改局和县税物局", index) == ["县发改局"]


def test_a_unit_named_by_what_it_sees_to():
    """"管医保报销的那个局": the unit whose core shares the longest run with what it is said to see to;
    nothing when no unit's core is in it or two units tie."""
    index = build_department_index([parse_document(COUNTY, "county")], CONFIG)
    index["县医保局"] = {"aliases": ["医保局"], "generic": False, "items": []}
    index["县行政审批服务局"] = {"aliases": [], "generic": False, "items": []}
    assert find_departments("管医保报销的那个局今年要做啥", index) == ["县医保局"]
    assert find_departments("专门负责审批办事的那个局要公开什么", index) == ["县行政审批服务局"]
    assert find_departments("负责发改的那个部门管哪些事", index) == ["县发改局"]
    assert find_departments("管全县钱袋子的那个局", index) == []          # no unit's core in it
    assert find_departments("医保报销比例是多少", index) == []            # no "…的那个局": a topic
