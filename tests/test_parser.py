"""The parse is pinned against the real document: metadata, sections, all 19 items."""
import pytest

from bot.kb.parser import cn_to_int, parse_document, rejoin_paragraphs, split_units

GENERIC = ["市直相关单位", "各乡镇（街道）人民政府（办事处）"]

# number, title, lead units, responsible units
ITEMS = [
    (1, "做好“三高四新”战略实施信息公开", [], GENERIC),
    (2, "做好各类规划主动公开", ["市发改局"], ["市数据资源中心"] + GENERIC),
    (3, "做好高标准市场规则标准和监管执法信息公开", ["市发改局", "市市场监管局", "市司法局"], GENERIC),
    (4, "做好民生领域信息公开", [], GENERIC),
    (5, "做好财政信息公开", [], ["市财政局"] + GENERIC),
    (6, "做好疫情防控信息公开", ["市卫生健康局", "市医保局"], GENERIC),
    (7, "持续加强重大政策发布解读", [], ["市数据资源中心"] + GENERIC),
    (8, "持续开展“一件事一次办”改革政策发布解读", ["市行政审批服务局"], GENERIC),
    (9, "加大政策解读回应", ["市行政审批服务局", "市发改局", "市优化办", "市数据资源中心"], GENERIC),
    (10, "增强回应关切效果", [], GENERIC),
    (11, "推进重点政务信息集中统一公开", ["市司法局", "市数据资源中心"], GENERIC),
    (12, "全面推行政府网站集约化建设", ["市数据资源中心", "市委网信办"], GENERIC),
    (13, "高质量推进基层政务公开标准化规范化", ["市行政审批服务局"], GENERIC),
    (14, "加强规范主动公开内容", ["市行政审批服务局"], GENERIC),
    (15, "提高依申请公开工作质量", [], ["市行政审批服务局"] + GENERIC),
    (16, "加快推进公共企事业单位信息公开", ["公共企事业单位相应主管部门"], []),
    (17, "加强指导培训", ["市行政审批服务局"], GENERIC),
    (18, "主动探索创新", ["市行政审批服务局"], GENERIC),
    (19, "强化监督评估", ["市行政审批服务局"], GENERIC),
]


def test_metadata(doc):
    assert doc.title == "宁乡市2021年政务公开工作要点"
    assert doc.issuer == "宁乡市政务公开政务服务工作领导小组办公室"
    assert doc.doc_number == "宁政务办发〔2021〕3号"
    assert doc.date == "2021年8月3日" and doc.date_iso == "2021-08-03"
    assert doc.notice_title == "关于印发《宁乡市2021年政务公开工作要点》的通知"
    assert doc.recipients == ["市直各单位", "各乡镇（街道）人民政府（办事处）"]
    assert doc.preamble.startswith("以习近平新时代中国特色社会主义思想为指导")


def test_sections(doc):
    assert [s.numeral for s in doc.sections] == list("一二三四五")
    assert doc.sections[0].title == "围绕“十四五”开好局起好步深化政务公开"
    assert doc.sections[4].title == "强化组织保障"
    assert [s.items for s in doc.sections] == [
        [1, 2, 3, 4, 5, 6], [7, 8, 9, 10], [11, 12, 13], [14, 15, 16], [17, 18, 19]]


def test_nineteen_items_in_order(doc):
    assert [i.number for i in doc.items] == list(range(1, 20))


@pytest.mark.parametrize("number,title,lead,responsible", ITEMS)
def test_item_table(doc, number, title, lead, responsible):
    item = doc.item(number)
    assert item.title == title
    assert item.lead_units == lead
    assert item.responsible_units == responsible
    # the bracket is cut off the body, and never leaks into the sentences
    assert "按职责分工负责" not in item.body
    assert item.units_text and item.units_text in item.text


def test_page_break_words_rejoined(doc):
    assert "市场准入负面清单" in doc.item(3).body
    assert "政策解读工作" in doc.item(9).body
    assert "确保公开和服务数据共享" in doc.item(13).body
    for item in doc.items:
        for s in item.sentences:
            assert "\n" not in s


def test_item_six_spans_two_paragraphs(doc):
    item = doc.item(6)
    assert "维护社会稳定。\n立足预防预警" in item.body
    assert item.body.endswith("加大药品和耗材集中采购等方面信息公开力度。")
    assert item.lead_units == ["市卫生健康局", "市医保局"]


def test_references_dates_counts(doc):
    assert "湘财税〔2021〕3号" in doc.item(15).references
    assert "《政府信息公开信息处理费管理办法》" in doc.item(15).references
    assert "国办发〔2020〕50号" in doc.item(16).references
    assert "《政府工作报告》" in doc.item(7).references
    assert "2021年底前" in doc.item(12).deadlines
    assert any(c.startswith("26个领域") for c in doc.item(13).counts)
    assert any(c.startswith("十五类") for c in doc.item(14).counts)
    assert "双随机、一公开" in doc.item(3).terms


def test_all_bracket_styles():
    assert split_units("市财政局，市直相关单位按职责分工负责") == ([], ["市财政局", "市直相关单位"])
    text = ("一、总体\n\n（一）甲事项。内容一。[县财政局牵头，县直单位按职责分工负责]\n\n"
            "（二）乙事项。内容二。〔县司法局、县教育局牵头，各乡镇按职责分工负责〕\n\n"
            "（三）丙事项。内容三（含括号）。（县卫健局牵头负责）\n\n（四）丁事项。没有责任单位。")
    d = parse_document(text, "t")
    assert [i.lead_units for i in d.items] == [["县财政局"], ["县司法局", "县教育局"], ["县卫健局"], []]
    assert d.items[1].responsible_units == ["各乡镇"]
    assert d.items[2].body.endswith("内容三（含括号）。")
    assert d.items[3].units_text == ""


def test_rejoin_keeps_sentences_and_headings_apart():
    paras = ["二、标题", "（一）事项。甲在市场", "准入方面。", "（二）下一项。"]
    assert rejoin_paragraphs(paras) == ["二、标题", "（一）事项。甲在市场准入方面。", "（二）下一项。"]


@pytest.mark.parametrize("text,value", [("一", 1), ("十", 10), ("十九", 19), ("二十三", 23), ("一百零五", 105)])
def test_chinese_numerals(text, value):
    assert cn_to_int(text) == value


# ------------------------------------------------------------------ other layouts
LAYOUT_ARABIC = """某县人民政府办公室
某政办发[2023]2号
关于印发《某县2023年政务公开工作要点》的通知
各乡镇人民政府，县直各单位：
现将要点印发给你们，请认真执行。
某县人民政府办公室
2023年2月10日
某县2023年政务公开工作要点
一、重点领域信息公开
1.做好农村饮水信息公开。定期公开水质检测结果。
责任单位：县水利局、各乡镇人民政府
2、做好垃圾分类信息公开。公开设施建设进度。
牵头单位：县城管局；配合单位：县住建局
二、保障措施
（3）加强培训。每年培训不少于两次。【县政府办牵头，县直各单位按职责分工负责】
附件：1.重点任务分工表
任务一 县水利局
"""

LAYOUT_RESTART = """某市2024年政务公开工作要点
一、公开重点
（一）做好预算公开
按规定公开部门预算和决算。（责任单位：市财政局（牵头）、市直各单位）
（二）做好规划公开。公开国土空间规划。〔市自然资源局牵头负责〕
二、保障
（一）加强考核。将政务公开纳入绩效考核。(市政府办牵头，各单位负责)
"""


def test_arabic_items_unit_lines_and_attachments():
    doc = parse_document(LAYOUT_ARABIC, "mou-2023")
    assert doc.doc_number == "某政办发[2023]2号" and doc.date_iso == "2023-02-10"
    assert [(i.number, i.title) for i in doc.items] == [(1, "做好农村饮水信息公开"), (2, "做好垃圾分类信息公开"),
                                                     (3, "加强培训")]
    assert doc.item(1).responsible_units == ["县水利局", "各乡镇人民政府"] and doc.item(1).lead_units == []
    assert doc.item(2).lead_units == ["县城管局"] and doc.item(2).responsible_units == ["县住建局"]
    assert doc.item(3).lead_units == ["县政府办"] and doc.item(3).responsible_units == ["县直各单位"]
    assert "责任单位" not in doc.item(1).body and "【" not in doc.item(3).body
    assert doc.attachments and doc.attachments[0].startswith("附件") and len(doc.items) == 3
    assert doc.item(1).label == "第1项 做好农村饮水信息公开"
    assert [s.items for s in doc.sections] == [[1, 2], [3]]


def test_numbering_that_restarts_in_each_section():
    doc = parse_document(LAYOUT_RESTART, "mou-2024")
    assert [i.number for i in doc.items] == [1, 2, 3]
    assert doc.item(1).title == "做好预算公开"  # a heading line of its own
    assert doc.item(1).lead_units == ["市财政局"] and doc.item(1).responsible_units == ["市直各单位"]
    assert doc.item(2).lead_units == ["市自然资源局"]
    assert doc.item(3).label == "第二部分第（一）项 加强考核" and doc.item(3).lead_units == ["市政府办"]


TITLE_FIRST = """某某县2022年政务公开工作要点

某政办函〔2022〕15号

各乡镇人民政府，县直各单位：
　　经县人民政府同意，现将《某某县2022年政务公开工作要点》印发给你们，请认真贯彻落实。

一、围绕稳住经济大盘加强信息公开
{a}加强助企纾困政策公开。及时发布减税降费、稳岗就业等政策，开设专栏集中公开。2022年6月底前完成专栏建设。
责任单位：县发改局、县税务局、县人社局
{b}做好重大项目信息公开。依据《国务院办公厅关于推进重大建设项目批准和实施领域政府信息公开的意见》（国办发〔2017〕94号）公开项目审批信息。
牵头单位：县发改局；责任单位：县住建局、各乡镇人民政府
二、加强政务公开平台建设
{c}推进政府网站集约化。完成县政府门户网站IPv6改造，整合部门网站。
责任单位：县数据资源局

附件：1.某某县政务公开任务分工表
      2.政务公开联络员名单
"""


@pytest.mark.parametrize("marks", [("【1】", "【2】", "【3】"), ("[1]", "[2]", "[3]"), ("1）", "2）", "3）"),
                                   ("〔一〕", "〔二〕", "〔三〕"), ("【一】", "【二】", "【三】"), ("1.", "2.", "3.")])
def test_title_first_layout_and_other_number_marks(marks):
    """The main title as the first line (as portal pages print it), items marked 【1】 / [1] /
    1） / 〔一〕, units on 责任单位： lines, attachments at the end."""
    doc = parse_document(TITLE_FIRST.format(a=marks[0], b=marks[1], c=marks[2]), "other")
    assert doc.title == "某某县2022年政务公开工作要点"
    assert doc.doc_number == "某政办函〔2022〕15号" and doc.recipients == ["各乡镇人民政府", "县直各单位"]
    assert doc.notice.startswith("经县人民政府同意") and "某政办函" not in doc.preamble
    assert [i.title for i in doc.items] == ["加强助企纾困政策公开", "做好重大项目信息公开", "推进政府网站集约化"]
    assert doc.items[0].responsible_units == ["县发改局", "县税务局", "县人社局"]
    assert doc.items[1].lead_units == ["县发改局"] and "国办发〔2017〕94号" in doc.items[1].references
    assert doc.items[0].deadlines and "2022年6月底前" in doc.items[0].deadlines
    assert "附件" not in doc.items[2].body and doc.attachments[0].startswith("附件")
    assert [s.items for s in doc.sections] == [[1, 2], [3]]


def test_units_label_closing_the_items_paragraph():
    doc = parse_document("某某县2022年政务公开工作要点\n\n一、加强信息公开\n"
                         "1.加强助企纾困政策公开。及时发布减税降费政策。责任单位：县发改局、县税务局\n"
                         "2.做好重大项目信息公开。公开项目审批信息。牵头单位：县发改局；配合单位：县住建局\n", "o")
    first, second = doc.items
    assert first.responsible_units == ["县发改局", "县税务局"] and "责任单位" not in first.body
    assert first.sentences == ["加强助企纾困政策公开。", "及时发布减税降费政策。"]
    assert second.lead_units == ["县发改局"] and second.responsible_units == ["县住建局"]


def test_unit_lines_with_roles_and_list_tails():
    # "X牵头，Y、Z配合" and "…等主管部门及各乡镇人民政府配合": the role words are not part of a name
    assert split_units("县人社局牵头，县教育局、县乡村振兴局配合") == (["县人社局"], ["县教育局", "县乡村振兴局"])
    assert split_units("县政府办牵头，县住建局、县卫健局等主管部门及各乡镇人民政府配合") == \
        (["县政府办"], ["县住建局", "县卫健局", "各乡镇人民政府"])
    assert split_units("责任单位：县司法局、县档案馆协助") == ([], ["县司法局", "县档案馆"])


def test_closing_paragraph_after_a_units_line_is_not_the_last_items():
    text = ("某县人民政府办公室文件\n\n某政办发〔2024〕5号\n\n某县2024年政务公开工作要点\n\n一、重点工作\n\n"
            "1.做好甲项公开。内容甲。\n责任单位：县财政局\n\n"
            "2.做好乙项公开。内容乙。\n责任单位：县司法局牵头，县档案馆配合\n\n"
            "各单位要高度重视，于2024年12月10日前报送落实情况。\n\n"
            "附件：1.分工表\n      2.建设规范")
    d = parse_document(text, "t")
    assert d.issuer == "某县人民政府办公室"  # the red-head banner's "文件" is not the issuer's name
    assert [i.number for i in d.items] == [1, 2]
    assert d.items[1].body == "做好乙项公开。内容乙。"
    assert d.items[1].lead_units == ["县司法局"] and d.items[1].responsible_units == ["县档案馆"]
    assert "高度重视" in d.closing and any("高度重视" in p for p in d.passages())
    assert d.attachments[0].startswith("附件")


LAYOUT_MIXED_UNITS = """某区2025年政务公开工作要点
一、稳经济
1.做好惠企政策公开。集中发布惠企政策。（牵头单位：区发改局；配合单位：区财政局、各街道（镇））
2.做好就业信息公开。每月发布招聘信息。
【责任单位】区人社局、区教育局、各街道（镇）
3.做好预算公开。部门预算批复后20日内公开。
牵头单位：区财政局　责任单位：区直各预算单位、各街道（镇）
二、强基层
4.深化基层政务公开。重点做好以下工作：
（1）调整标准目录。年底前完成目录调整。
（2）建好公开专区。各街道便民服务中心设立专区。
牵头单位：区政府办　责任单位：区民政局
5.推进村务公开。按月公开村级财务。
【责任单位】区农业农村局
三、保障
标注【责任单位】的事项，排在首位的单位为牵头单位。
"""


def test_units_written_three_ways_and_points_inside_an_item():
    doc = parse_document(LAYOUT_MIXED_UNITS, "mou-2025")
    # "（1）（2）" under item 4 are its points, not items: the numbering goes on with "5."
    assert [i.number for i in doc.items] == [1, 2, 3, 4, 5]
    assert "建好公开专区" in doc.item(4).body and doc.item(5).title == "推进村务公开"
    # a bracket pair around the whole units text goes, the one inside a unit's name stays
    assert doc.item(1).lead_units == ["区发改局"] and doc.item(1).responsible_units == ["区财政局", "各街道（镇）"]
    # "【责任单位】…" with the document's convention "排在首位的单位为牵头单位"
    assert doc.item(2).lead_units == ["区人社局"] and doc.item(2).responsible_units == ["区教育局", "各街道（镇）"]
    assert doc.item(5).lead_units == ["区农业农村局"] and doc.item(5).responsible_units == []
    # two labels on one line, separated by a space only
    assert doc.item(3).lead_units == ["区财政局"] and doc.item(3).responsible_units == ["区直各预算单位", "各街道（镇）"]
    assert doc.item(4).lead_units == ["区政府办"] and doc.item(4).responsible_units == ["区民政局"]
    assert "责任单位" not in doc.item(2).body and "牵头单位" not in doc.item(4).body


def test_responsibility_lists_without_the_convention_name_no_lead():
    doc = parse_document(LAYOUT_MIXED_UNITS.replace("标注【责任单位】的事项，排在首位的单位为牵头单位。", "加强组织领导。"),
                         "mou-2025")
    assert doc.item(2).lead_units == [] and doc.item(2).responsible_units == ["区人社局", "区教育局", "各街道（镇）"]
