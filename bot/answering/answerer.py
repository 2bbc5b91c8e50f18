"""Decides what to answer from the knowledge base, independent of Rasa.

Given the citizen's text, its tokens, the NLU intent and entities and the
conversation context (item / department last talked about), returns a
:class:`Reply`: an answer with citations, a clarifying question with candidate
items as buttons, or an honest "I can't help" with the way to a person.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Dict, List, Optional, Sequence

from bot.answering.documents_asked import CONTENTS_RE, EN_THIS_DOC_RE, other_document, outline
from bot.answering.cards import (Reply, citation, doc_citation, item_departments, source_line,
                                 units_sentence)
from bot.kb.parser import BOOK_TITLE_RE
from bot.kb.store import KnowledgeBase
from bot.nlp.normalize import normalize_text, scoring_text
from bot.nlp.segmenter import CJK_RE, content_words, default_segmenter
from bot.retrieval.positions import POSITION_WORDS_RE, items_at_position
from bot.retrieval.english import english_words, lemma
from bot.retrieval.references import DOC_NO_RE, document_named, items_naming
from bot.retrieval.search import TOP_K, Hit, PolicyIndex

ANSWER_COVERAGE = 0.45   # share of the question's weighted words the item must contain
PASSAGE_COVERAGE = 0.55  # a notice/preamble clause must cover this much of the question
WEAK_COVERAGE = 0.25     # below this nothing is offered, not even as a choice
_ctx_margin = os.environ.get("ZWZX_CONTEXT_MARGIN", "0.05")
CONTEXT_MARGIN = None if _ctx_margin == "off" else float(_ctx_margin)  # retrieve(): a follow-up's context item
CONTEXT_TIES = 3  # ... among at most this many items about as good (more: words most items use, a choice)
TOPIC_SWITCH_RE = re.compile(r"呢[？?。！!\s]*$|换个|另外|再问")
CLARIFY_MARGIN = 1.15    # top score must beat the runner-up by this factor to answer directly
CLEAR_COVERAGE = 0.3     # an item this far below ANSWER_COVERAGE is still answered when it is
CLEAR_MARGIN = 2.2       # ... this many times better ranked than every other item
FAR_MARGIN = 3.0         # ... or, from WEAK_COVERAGE up, this many times better than the runner-up
LEAN_MARGIN = 2.0        # ... or, a little less far ahead (CLEAR_COVERAGE up: this; WEAK_COVERAGE up:
LEAN_FAR_MARGIN = 2.2    # ... this), when the meaning does not clearly single out another item
PUBLISHED_LEAN = 0.15    # ... or LEAN_MARGIN ahead from this coverage, in a question about what is published
LITERAL_RUN = 6          # a run of the question's words this long, written by one of the tied items only
LITERAL_TIE = 0.02       # ... among the items whose coverage is this close to the best
DOC_CHOICE_RANK = 0.6    # another document's best item ranked this close (and strong): offer both
MAX_ANSWER_CHARS = 300
DEADLINE_WORDS = {"时间", "时限", "期限", "时候", "完成", "截止", "完工", "结束", "办完", "做完", "落实"}  # no topic of their own
MAX_INPUT_CHARS = 500
TRACE = os.environ.get("ZWZX_TRACE") == "on"  # evaluation only: the card carries the retrieval's scores

_APPROVAL = r"同意|批准|审定"  # the body whose approval a document was issued with
DOC_INFO_RE = re.compile(r"文号|发文字号|字号|印发|发布|发文|哪天|日期|时间|哪个单位|谁发|标题|名称|发给|主送|落款|"
                         r"几月|几号|哪一天|哪年|下发|发下来|发出来|发出|签发|制发|发的|发送|收文|抄送|发到|全称|全名|题目|叫什么|"
                         r"(?:哪个|哪家|什么)(?:机关|机构)|(?:经|经过|由)?(?:哪个|哪家|什么|谁)(?:机构|机关|部门|单位|领导小组)?(?:" + _APPROVAL + ")")
# "是经过哪个机构同意后印发的": the notice says whose approval it was issued with
APPROVAL_RE = re.compile(_APPROVAL)
APPROVED_ISSUE_RE = re.compile(r"(?:" + _APPROVAL + r")(?:后|之后|以后)?(?:才)?(?:印发|下发|发布|发出|出台)")
RESPONSIBLE_RE = re.compile(r"谁|哪个部门|哪些部门|哪个单位|哪家|牵头|负责|归.{0,2}管|找哪")
DUTIES_RE = re.compile(r"负责(什么|哪些|啥)|(分到|分得|分了|领到|领了|接到)?(哪些|什么|啥|几项|多少)(活儿?|事项|事情?|任务)|(做|管|干|搞|弄|抓)些?(什么|哪些|啥|么子|名堂)|(做|管|干|搞|抓|负责)(哪块|哪几块|哪一块|哪些方面|哪方面|哪几项)|名堂|职责|任务|工作有哪些|哪些工作|有什么工作|哪几(?:件|样|项)(?:事情?|活儿?|工作|任务)|几件事|(?:点名|点到|涉及|提到)[\u4e00-\u9fff]{0,4}?(?:哪几|哪些|几)(?:条|项|处)|呢[？?]?$")
# an English who-is-responsible question (the classifier has hardly seen English)
EN_RESPONSIBLE_RE = re.compile(r"\bwho\b.{0,40}\b(?:leads?|leading|in charge|responsible|handles?|oversees?|manages?|runs?)\b|"
                               r"\b(?:which|what)\s+(?:government\s+)?(?:department|bureau|unit|agency|office|body|"
                               r"organi[sz]ation|authority)s?\b", re.I)
EN_DEADLINE_RE = re.compile(r"\b(?:deadlines?|by when|when|how long|timeline|time ?limits?|due|time ?frame|schedule)\b", re.I)
# an English follow-up pointing back at what was just answered ("Who leads it?", "What about the deadline?")
EN_ANAPHORA_RE = re.compile(r"\b(?:it|that|this|these|those|they|them)\b\s*[?.!]*$|"
                            r"\b(?:that|this|these|those|the same)\s+(?:work|item|task|tasks|one|point|area|part|measure|"
                            r"thing|effort|job|initiative|programme|program)\s*[?.!]*$|^\s*(?:and|what about|how about)\b", re.I)
EN_FRAME_WORDS = {"lead", "leads", "leading", "led", "handle", "handles", "handling", "manage", "manages", "run", "runs",
                  "deadline", "deadlines", "timeline", "due", "long", "limit", "schedule", "frame"}
# the lead unit of an item named by its place, and what else it does ("第二项牵头的单位负责哪些事")
EVERYDAY_WEIGHT = 0.5  # a word this frequent in Chinese in general (bot/retrieval/general_words.py) is not a topic
# the unit just named, referred to ("它还负责什么", "这个单位还管哪些")
# "我是市医保局办公室的，…有哪些工作涉及我们局": the asker speaks for a unit it named and asks its share
SELF_UNIT_RE = re.compile(r"(?:我|本人)(?:是|在)[^，,。？?！!]{0,24}?(?:的|上班|工作|任职)|(?:我们|我|本)(?:局|单位|部门|中心|办|委)")
OWN_SHARE_RE = re.compile(r"涉及(?:到)?(?:我们|我|本)|(?:牵头|参与|负责|承担|分到|分了|分配)(?:了)?(?:哪几项|哪些项|哪些工作|哪些事项|哪些事情|哪些事|哪些任务|几项|什么工作|什么任务|什么事项)")
UNIT_ANAPHORA_RE = re.compile(r"^(?:那|那么)?(?:它|他们|她|该单位|这个单位|这家单位|该部门|这个部门|这个局|该局|牵头的)")
LEAD_UNIT_DUTIES_RE = re.compile(r"(?:牵头|负责牵头|主抓)的?(?:单位|部门|局)(?:还|都|一共|总共|另外)?"
                                 r"(?:负责|管|牵头|承担|要做|要干|干|做)(?:了)?(?:哪些|什么|啥|几项|多少)")
EN_FRAME_WORD_RE = re.compile(r"\b(?:" + "|".join(sorted(EN_FRAME_WORDS, key=len, reverse=True)) + r")\b", re.I)
# "And the Cyberspace Affairs Office (市委网信办)?", "What about 市财政局?": a unit named after another one
EN_AND_THE_UNIT_RE = re.compile(r"^\s*(?:and|what about|how about)\b(?:\s+\S+){1,8}\s*[?？.!]*\s*$", re.I)
EN_DUTIES_RE = re.compile(r"\b(tasks?|duties|duty|responsible for|in charge of|(what|which) (work|things?)|"
                          # "List the work items led by the Finance Bureau"
                          r"(?:items?|tasks?|work|ones)\b.{0,20}\b(?:led|headed|overseen|run)\s+by|"
                          # "Which items involve the Data Resources Center?", "What is the Finance Bureau's role?"
                          r"(?:items?|parts?|points?)\s+(?:involve|include|mention|name|concern|cover)s?\b|"
                          r"\b(?:role|job|share|part)s?\s+(?:of|for)\b|'s\s+(?:role|job|share|part)s?\b|"
                          r"what (does|do|will|should|must) .{0,60}\b(do|handle))\b"
                          # "and the cyberspace office?" (after another unit's duties): a unit alone, like 那市委网信办呢
                          r"|^\s*(?:and|what about|how about)\s+(?:the\s+)?(?!.*\b(?:which|who|whom|whose|what|when|where|how|"
                          r"leads?|responsible|charge|deadline|this|that|it)\b)[a-z][a-z '-]{2,40}[?.!]*\s*$", re.I)
# "Which office issued this work plan notice?", "What is the document number of the plan?"
# "the 2021 work plan", "this Ningxiang openness plan": the document itself, with a year or a place
# the work points themselves in English: "the 2021 Ningxiang open government work plan", "this transparency
# work plan", "the key points for government affairs openness", "Ningxiang's government openness key tasks"
# (not a document an item cites: "the notice on information processing fees")
_EN_THE_DOC = (r"(?:\b(?:this|the)\s+|\b(?-i:[A-Z][a-z]+)(?:'s|’s)\s+)(?:[A-Za-z0-9'’-]+\s+){0,6}?"
               r"(?:work\s+plan|plan|notice|document|circular|work\s+points|key\s+points|key\s+tasks|main\s+points)\b"
               r"(?!\s+(?:on|about|regarding|concerning|for\s+(?!\d{4}|government|open)))")
_EN_DOC_CUE = (r"\b(?:issued?|issuing|issuer|signed|dated?|document number|reference number|released|addressed|"
               r"sent to|recipients?|(?:full\s+)?title|(?:who|which (?:office|agency|department|body|unit))\s+published)\b")
EN_DOC_INFO_RE = re.compile(_EN_DOC_CUE + r".{0,40}" + _EN_THE_DOC + r"|" + _EN_THE_DOC + r".{0,40}" + _EN_DOC_CUE, re.I)
DOC_SELF_RE = re.compile(r"要点|这份文件|这个文件|该文件|通知|文件(里|中|上)")  # the question names the document
# a public body named in a sentence: 长沙市数据资源管理局, 省政府办公厅, 市委网信办
BODY_NAME_RE = re.compile(r"(?:[\u4e00-\u9fff]{1,4}?(?:省|市|县|区)|国务院|国家|省|市|县)[\u4e00-\u9fff]{1,10}?"
                          r"(?:管理局|局|办公厅|办公室|委员会|中心|厅|委|(?<!通)办)(?![理法事公])"
                          # "经国务院统一修订的…负面清单": the State Council acting by itself
                          r"|国务院(?=统一|批准|同意|审定|修订|制定|印发|发布|部署)")
# a personal errand: how to pay, apply, renew… (the documents say what is published, not how to do it)
# one's own records ("我自己的社保缴费明细", "本人的公积金账户"): a personal errand, even asked as 申请公开
# the same in English: "my tax refund", "my pension payments" (whether it is published is not asked of the
# documents: it is one's own case)
EN_PERSONAL_RE = re.compile(r"\bmy (?:own )?(?:[a-z]+ ){0,2}(?:refunds?|balances?|records?|accounts?|bills?|fines?|"
                            r"payments?|pensions?|claims?|tickets?|salary|wages|loans?|mortgage|passport|cards?)\b", re.I)
PERSONAL_RECORD_RE = re.compile(r"(?:我|本人)(?:自己|个人|家)?的[\u4e00-\u9fff]{0,8}?(?:记录|余额|账户|明细|档案|缴费|证件|流水|账单|违章|罚单|扣分)"
                                # "违章罚款交了没得，咋个查": whether one's own fine or fee is paid
                                r"|(?:违章|罚款|罚单|扣分)[\u4e00-\u9fff]{0,4}?(?:交了没|缴了没|处理了没|交没交|缴没缴)"
                                # "我提交的申请，办理进度在哪看", "网上申请的护照，办理进度怎么查": one's own case
                                r"|(?:我|本人|自己)(?:个人|家)?[\u4e00-\u9fff]{0,4}?(?:申请|提交|办|交)的[\u4e00-\u9fff]{1,10}?[，,]?(?:的)?(?:办理|审批|审核)?进度"
                                r"|申请的[\u4e00-\u9fff]{1,8}?[，,]?(?:的)?(?:办理|审批|审核)进度"
                                # "申请的贷款为什么还没批下来": one's own case, still waiting
                                r"|(?:为什么|为啥|咋|怎么)(?:还)?(?:没|不)(?:批|办|发|到账|通过|审批|审核|下来)"
                                r"|还没(?:批下来|到账|审批下来|发下来|办下来)"
                                # "公示名单里查不到我名字": one's own entry in a list; "怎么查案子": one's own court case
                                r"|(?:查不到|找不到|没有|没)(?:我|自己|本人|我家)(?:的)?(?:名字|信息|记录)"
                                r"|查(?:个|一下|下)?(?:案子|案件)"
                                # "账号密码忘了": one's own account, even of a government website
                                r"|密码(?:忘了|忘记了?|丢了|不对|错误)|(?:忘记|忘了|找回|重置|修改)(?:了)?(?:登录|账号|账户)?密码"
                                # "公积金余额在哪查": the balance of one's own account
                                r"|(?:公积金|社保|医保|养老金|话费|电费|水费|燃气费|银行卡|信用卡|公交卡)(?:卡|账户)?的?(?:余额|缴费记录|明细)"
                                # "我想公开我的简历，政府网站能帮我发布吗", "怎么发布寻人信息": publishing one's own
                                # notice is not what the government publishes
                                r"|(?:我|本人|我们)(?:想|要|能|可以|能不能|可不可以)?[^，,。？?]{0,6}?(?:公开|发布|登|挂|刊登|张贴)"
                                r"(?:一下|一条|一则|个|一个)?(?:我|自己|本人)(?:的|家)|寻人|寻物|失物招领|征婚|求职简历|个人简历")
# "市医保局的办公电话是多少", "市财政局在哪条路": how to reach an office, not what it sees to
UNIT_CONTACT_RE = re.compile(r"(?:办公|联系|咨询|值班|服务|座机)?电话(?:号码|号)?(?:是|是个)?(?:多少|几号|啥)"
                             r"|地址(?:是|在)?(?:哪|什么|啥)|怎么(?:走|去)")  # (which street or bus: SERVICE_RE)
# "市财政局局长叫什么名字", "现在的县长是谁": who holds an office — no document says, and it is not
# which unit sees to a task (负责人, 领导 are left out: "这项工作的负责人是谁" asks for the lead unit)
OFFICIAL_NAME_RE = re.compile(r"(?:局长|市长|县长|区长|镇长|乡长|书记|主任|科长|处长|部长|厅长|主席|院长|所长|站长|校长)"
                              r"(?:现在|目前|是)?(?:叫什么|叫啥|是谁|是哪位|姓什么|姓啥|的名字|名字|的姓名|姓名|的简历|简历)")
SERVICE_RE = re.compile(r"(?:几点|周末|节假日|星期[一二三四五六日天]|今天|明天|中午)(?:上班|下班|开门|关门|营业|办公)|"
                        # "周六上午开不开门": whether an office is open on a day
                        r"(?:周[一二三四五六日天末]|星期[一二三四五六日天]|节假日|今天|明天)[上下中]?午?"
                        r"(?:开不开门|开门吗|上不上班|上班吗|办不办公|办公吗|营不营业)|"
                        r"(?:上班|办公|营业|开放)时间|"
                        r"(?:怎么|怎样|如何|咋|么子|啷个)(?:自己)?(?:交|缴|缴纳|办|办理|申请|补办|补领|挂失|报销|开具?|领取|预约|注册|续办|换|"
                        r"转移|迁移|转入|转出|提取|过户|退费|退款|关注|安装|登录|登陆|绑定|解绑)"
                        r"|办理?(?:要|需要)?多(?:久|长时间)|多久(?:能|可以)?办(?:好|完|下来)"
                        # "申请公租房需要满足什么条件": whether one qualifies for something
                        r"|(?:需要|要|得)(?:满足|符合|具备)(?:什么|哪些|啥)(?:样的)?条件|(?:申请|办理|领取|享受)[\u4e00-\u9fff]{0,6}?(?:的)?条件"
                        # "市民之家在哪条路，坐几路公交能到", "疫苗哪个医院能打"
                        r"|在哪条(?:路|街)|坐几路|几路(?:公交|车)"
                        # "社保断缴了咋整", "交通违章在哪里查", "网上咋挂号": one's own case or booking
                        r"|(?:断缴|断保|停保|欠费|逾期)了?(?:咋整|咋办|怎么办|如何处理)|违章[\u4e00-\u9fff]{0,4}?(?:在哪|去哪|怎么|咋|如何)(?:里|儿)?(?:查|处理|交|缴)"
                        r"|(?:怎么|咋|如何)(?:在)?(?:网上|手机上)?挂号|挂号(?:平台|系统|网站|小程序|在哪|去哪|怎么|咋)"
                        r"|哪(?:个|家|所)[\u4e00-\u9fff]{0,3}?(?:医院|窗口|大厅|网点|银行|营业厅|社区|地方)(?:可以|能|才能)?(?:补办|办|交|缴|开|打|接种|领|买|挂号)"
                        r"|打印|我的[\u4e00-\u9fff]{0,8}?(?:记录|余额|账户|明细|档案|缴费|证件|身份证|驾驶证|驾照|户口本|护照|社保卡|医保卡|银行卡)|查(?:询|一下|下)?余额|余额(?:怎么|如何|在哪)"
                        r"|要带(?:什么|哪些|啥)|(?<!知道)(?<!了解)(?<!清楚)(?:需要|要|得)(?:准备|提供|提交)?(?:好)?(?:什么|哪些|啥)(?:些)?(?:样的)?(?:材料|资料|证件|手续)|(?:去|到|在)哪(?:里|儿|个窗口|个大厅|个网点)?(?:可以|能|才能)?(?:补办|办|交|缴|开|打|接种|领|买|挂号)"
                        # an entitlement or a case of one's own: "能报多少", "有没有补贴", "多久会有人来处理"
                        r"|(?:能|可以)?(?:报|领|补|退|赔|发)多少|有没有(?:补贴|补助|优惠|奖励)|(?:多久|几天)(?:会|能)?有人(?:来)?(?:处理|管|上门)"
                        # a recommendation, a lost card: "哪家医院看病比较好", "卡丢了要怎么补"
                        r"|哪(?:家|个|所|间)[\u4e00-\u9fff]{0,8}?(?:比较|最|更)?(?:好|靠谱|便宜)|推荐(?:一下|几)?(?:家|个|所)|有哪些[\u4e00-\u9fff]{0,6}推荐"
                        r"|(?:卡|证|照|本)[^，,。？?]{0,3}(?:丢了|丢失|遗失|掉了|弄丢)|(?:怎么|怎样|如何|咋)补(?![充贴助])"
                        # "网站上能直接缴社保吗", "查个人征信", "哪个部门办狗证"
                        r"|(?:能|可以)(?:直接|在线|网上)?(?:缴纳?|交(?:纳|费)|补办|挂失|预约|报销)|征信"
                        r"|(?:办|办理|申领|补办)[\u4e00-\u9fff]{1,3}?(?:证|卡|照)(?![明据券])"
                        r"|\bhow (?:do|can|could|should) i (?:apply|get|pay|renew|register|replace|obtain|check|withdraw|transfer|extend|open|book|cancel|claim)\b"
                        r"|\bwhere (?:can|do|should|could) i (?:get|apply|pay|renew|register|obtain|book)\b"
                        r"|\bhow long (?:does|will|would) it take to (?:get|apply|renew|register|obtain|process|receive)\b"
                        r"|\bmy\b.{0,40}\b(?:balance|account|records?|payments?|bills?|card|licen[cs]e|passport|visa|permit)\b"
                        # "can someone from another province buy an apartment here?": a purchase, not a publication
                        r"|\b(?:can|could|may)\s+(?:i|we|someone|people|foreigners|non-locals)\b.{0,40}"
                        r"\b(?:buy|purchase|rent)\s+(?:a|an|the)?\s*(?:house|home|apartment|flat|property|car)\b"
                        # where a building is: "人民医院在什么位置", "出入境管理大厅在哪"
                        r"|(?:医院|大厅|大楼|办事处|派出所|车管所|出入境|学校|幼儿园|银行|营业厅|服务中心|管理处|中心|分局|站|接种点|检测点|采样点)"
                        r"[\u4e00-\u9fff]{0,3}?(?:在什么位置|的位置|在什么地方|的地址|地址是|在哪条路|怎么走|在哪(?:里|儿)?[？?。！!]*$)"
                        # signing up for an exam or a course: "笔试什么时候报名", "怎么报名"
                        r"|(?:什么时候|何时|哪天|几号|怎么|怎样|如何|咋|在哪里?|去哪里?)(?:能|可以|开始)?报名"
                        r"|\b(?:to fix|to repair|fix it|repair it|get it fixed|get it repaired)\b|\bget (?:my|the|our)\b.{0,30}\b(?:fixed|repaired)\b"
                        # opening hours, like 几点开门: "What time does the station open?"
                        r"|\bwhat time (?:does|do|is|will)\b.{0,40}\b(?:open|close)\b|\bopening hours\b"
                        # "Is the service hall open on Saturdays?", "Can I pay my property tax online?",
                        # "how to move my hukou", "Any good hotpot places near …?"
                        r"|\bopen (?:on|at|during) (?:the )?(?:saturdays?|sundays?|weekends?|holidays?|public holidays)\b"
                        r"|\bcan i (?:pay|renew|register|book|move|transfer)\b|\b(?:how (?:to|do i|can i)|help me) (?:move|transfer) my\b"
                        r"|\bany good\b.{0,30}\b(?:places?|restaurants?|food|shops?|hotels?)\b|\b(?:restaurants?|hotpot|places to eat)\b"
                        r"|\b(?:lost|stolen|replace|renew)\b.{0,30}\b(?:card|licen[cs]e|passport|certificate|id)\b"
                        # an amount of money for a person: "how big is the subsidy for …", "the child subsidy amount"
                        r"|\bhow (?:much|big|large|high) (?:is|are|will|would) (?:the |my |a |an )?(?:\w+ )?(?:subsid(?:y|ies)|allowances?|"
                        r"benefits?|pensions?|compensation|refunds?|bonus(?:es)?|grants?)\b"
                        r"|\b(?:subsid(?:y|ies)|allowances?|benefits?|pensions?|compensation|grants?) (?:amounts?|rates?|standards?)\b", re.I)
# ... unless the question is about information being published or found
DISCLOSURE_RE = re.compile(r"公开(?!招聘|招考|招录|招标|课|赛)|公布|发布|公示|信息|政策|解读|网站|专栏|平台|查询|查到|能查|指南|目录|清单|"
                           r"\b(?:publish|disclos|public|information|open(?:ness|ly|\s+government|\s+data|\s+information)|transparen|release|updat|news|notice|announce|guide|report)", re.I)
# an English question asking whether something is published or where its guide is: what these
# documents are about (the classifier, with hardly any English examples, calls most English out of scope)
# ... or what the government, its departments or its policies do (no errand: SERVICE_RE is checked too)
EN_PUBLISHED_RE = re.compile(r"\b(?:publish\w*|publici[sz]\w*|disclos\w*|made public|make \w+ public|transparen\w*|"
                             r"releas\w*|announc\w*|guides?|guidelines?|information|info"
                             r"|government|official(?:s|ly)?|authorit(?:y|ies)|departments?|bureaus?|agenc(?:y|ies)"
                             r"|regulators?|polic(?:y|ies)|regulations?|municipal)\b", re.I)
# a question reaching an item only through a list of examples must ask about publishing, seeing or
# responding for the item to answer it (``PolicyIndex.listed_only``)
LISTED_GATE = os.environ.get("ZWZX_LISTED_GATE", "on") != "off"
LISTED_FRAME_RE = re.compile(r"^(?:政策|政府|规定|文件|措施|办法|工作|情况|要求|新政)$")  # what is asked, not of what
# ... and it asks what the policy, the standard or the amount is
LISTED_CONTENT_RE = re.compile(r"(?:有|出了|出台了?|定了)(?:什么|哪些|啥)(?:新的?)?(?:政策|规定|补贴|标准|待遇)|(?:政策|规定|标准|待遇)是(?:什么|啥|多少)"
                               r"|(?:标准|额度|比例|价格|金额)(?:是)?多少|多少钱|(?:怎么|如何|咋)(?:调整?|算|计算|分|领|补|涨)")
UNKNOWN_TOPIC_COVERAGE = 0.5  # ... and no item covers even half of the question
# ... asked of the assistant itself ("…解读一下"), not whether someone explains it ("有没有官方出来讲解一下")
EXPLAIN_TO_ME_RE = re.compile(r"^(?!.*(?:有没有|会不会|官方|政府|部门|有人|谁))"
                              r".*(?:(?:解读|讲解|解释|介绍|讲讲|说说)一下|(?:给|帮|跟|替)我(?:解读|讲解|解释|讲讲|说说|介绍))")
# "什么是灵活就业", "政务云是什么意思": what a term means, asked bare — answered only where a document
# writes the term (a typo aside); a term no document writes is not defined by them
TERM_ASK_RE = re.compile(r"^(?:请问)?(?:什么是|什么叫|啥是|啥叫|何为|何谓)[“\"《]?(?P<a>[\u4e00-\u9fff]{2,8}?)[”\"》]?(?:改革)?"
                         r"(?:呀|啊|呢)?[？?。!！]*$|^(?:请问)?[“\"]?(?P<b>[\u4e00-\u9fff]{2,8}?)[”\"]?(?:改革)?(?:分别|具体|到底|究竟)?"
                         r"(?:是什么意思|是啥意思|什么意思|是什么|是啥|指什么|是指什么|指的是什么)(?:呀|啊|呢)?[？?。!！]*$")
TERM_FRAME_RE = re.compile(r"^[一二三四五六七八九十两几]|第|项|条|部分|文件|要点|通知|标题|文号|这|那|的|具体|要求|重点|内容|范围|依据")
TERM_KNOWN_SHARE = 0.6  # of the term's character pairs the documents write (a typo keeps most of them)
CONTENT_ASK_RE = re.compile(r"标准(?:是)?(?:怎样|怎么样|什么)|按(?:什么|啥|哪个)标准|(?:是)?(?:怎么|如何|咋)(?:规定|计算|算|定)的"
                            r"|有(?:什么|哪些|啥)优惠|优惠(?:政策)?是|(?:怎么|如何)收费|收不收费|能(?:补|报|领|退)多少"
                            r"|(?:怎么|如何|咋|去哪|在哪)(?:儿|里)?(?:申请|申领|领取|办理)|申请(?:条件|流程|材料)")
LISTED_CONTENT_EN_RE = re.compile(r"\bpolic(?:y|ies) (?:on|for|about|regarding)\b|\bhow much\b|\b(?:rate|amount|level|limit|"
                                  r"standard|price)s? (?:of|for|is|are)\b|\bminimum\b|\bsubsid\w*\b", re.I)
LISTED_ASK_RE = re.compile(r"公开|公布|发布|公示|晒|挂|信息|解读|回应|答复|表态|舆情|通报|透明|网站|专栏|平台|栏目|查|看|知道|"
                           r"对外|通知|告知|告诉|贴出来|说明|谁(?:来)?管|哪个部门|哪个单位|牵头|负责|监督|领域|方面")
LISTED_ASK_EN_RE = re.compile(r"\b(?:publish\w*|publici[sz]\w*|disclos\w*|made public|make \w+ public|transparen\w*|"
                              r"releas\w*|announc\w*|information|info|data|respon\w*|report\w*|online|website|find|see|"
                              r"check|know|which (?:department|office|bureau|agency)|who|brief\w*|explain\w*|interpret\w*|respond\w*)\b", re.I)
FOREIGN_SURE = 0.6       # English words covering less than this leave the choice to the meaning
# asked whether something is published, where to see it, who oversees it: what these documents answer
DISCLOSURE_ASK_RE = re.compile(r"(?:公开|公布|发布|公示|晒|挂)(?:出来|出去)?了?(?:吗|么|没|不|嘛)|会不会(?:公开|公布|发布|公示|对外|拿出来)"
                               r"|(?:能|可以|可)(?:不能)?(?:查|看)(?:到|得到)?(?:吗|么|不)|在哪(?:里|儿)?(?:能|可以)?(?:看|查)"
                               r"|对外(?:说|公布|讲|发布)|告诉老百姓|让老百姓知道|有人管(?:吗|没|不)|谁(?:来)?管|哪个部门(?:管|负责|牵头)"
                               r"|要(?:不要)?(?:交|掏)钱|是怎么回事|有(?:没有)?(?:统一|规范|要求|规定)")
INTENT_MODES = {"ask_responsible": "responsible", "ask_deadline": "deadline", "ask_full_text": "full"}
Z_AGREE_WORDS = 2.0       # the words' best item is the meaning's best too, standing this far out
SERVICE_COVERAGE = 0.9   # an item covering nearly all of an errand question is still its answer
FULL_TEXT_RE = re.compile(r"全文|原文|完整|详细内容|全部内容")
HANDOFF_HINT = "如需进一步帮助，您可以回复“转人工”联系工作人员，或拨打12345政务服务便民热线。"
FULL_TEXT_HINT = "回复“查看全文”可查看该项全文。"
HUMAN_BUTTON = {"title": "转人工", "payload": "/request_human"}
CHINESE_NOTE = "本服务以中文答复（This service answers in Chinese）。"
LATIN_WORD_RE = re.compile(r"[A-Za-z]{2,}")
# a follow-up asking for more about what was just answered (bot/nlu/retrieval_arbiter.py routes it here)
# Right after an item that cites other documents ("落实……《关于……的通知》（湘财税〔2021〕3号）"),
# "依据哪个文件", "是哪两个部门发的", "Which regulation is that based on?" ask about those documents:
# the item's sentence that cites them answers (not the work points' own metadata)
CITED_FOLLOW_UP_RE = re.compile(
    r"依据|依照|出处|(?:根据|按照|参照)(?:的)?(?:是)?(?:哪|什么|啥)|(?:哪|什么|啥)(?:个|份|部|一个)?(?:文件|规定|办法|法规|条例|通知)"
    r"|哪(?:个|些|两个|几个)?(?:部门|单位|机关|部委)(?:联合)?(?:发|印发|出台|制定|下发)|谁(?:发|印发|出台|制定)的"
    r"|\b(?:based on|according to|legal basis|(?:which|what) (?:regulation|document|rule|law|notice)s?|issued (?:it|that|this|them)|who issued)\b",
    re.I)
# the English words of such a follow-up that name no topic ("Which document number sets the rules?")
EN_CITED_FRAME = {form for w in """document documents number numbers set sets rule rules regulation regulations law laws
    notice notices file files basis based base govern governs apply applies follow follows require requires issue issued
    come comes source reference references cite cited name title official which what behind underlie underlying
    legal provision provisions""".split() for form in (w, lemma(w))}
FOLLOW_UP_RE = re.compile(r"^(?:那|那么)?(?:这个|这项|这些|该项|此项|这一项|它|上面|刚才)[\u4e00-\u9fff]{0,6}?(?:具体|详细|是什么|指什么|包括|有哪些|怎么)"
                          r"|^(?:具体|详细)(?:有|是|包括|说说|讲讲|内容|涉及|覆盖|指)"
                          # "具体要求是什么", "详细规定有哪些", "有什么具体要求"
                          r"|^(?:具体|详细)的?(?:要求|规定|内容|措施|做法|安排|任务)(?:是|有|包括|指|晓得|知道|清楚|讲讲|说说)"
                          r"|^(?:有)?(?:什么|哪些|啥)具体(?:的)?(?:要求|规定|内容|措施|做法|安排|任务)")
# A short follow-up with no anaphor ("具体要干啥", "涉及哪些领域", "那要统一几样东西啊", "在哪个栏目能看到"):
# it asks which ones / what / where of the item just answered, when its words are that item's
SHORT_FOLLOW_UP_RE = re.compile(r"^(?:那|那么|好的?|嗯)?[，,]?(?:具体|详细|主要|都|还|一共|分别)?(?:要|会|能|是|有|在)?"
                                r"(?:涉及|包括|包含|有|要|是|指|讲|说|干|做|统一|列|公开|放|发)?[^，,。]{0,6}?"
                                r"(?:哪些|什么|啥|几样|几个|几项|多少|哪几|哪个栏目|哪里|哪儿)")
SHORT_FOLLOW_UP_CHARS = 10
# "那线上的专栏呢": what about another part of it
WHAT_ABOUT_RE = re.compile(r"^(?:那|那么)([\u4e00-\u9fff]{1,12})(?:呢|怎么样|怎么办|如何)[？?。！!]*$")
# "然后呢", "还有吗", "能说具体点吗", "tell me more": more of what was just answered (its full text)
MORE_RE = re.compile(r"^(?:那|那么|好的?|嗯+|哦+|ok|okay)?[，,\s]*(?:然后呢|还有呢|还有吗|还有没有|还有别的吗|还有其他的?吗|继续|接着说|"
                     r"具体(?:点|些|一点)?(?:呢|说说|讲讲)|(?:能|可以|麻烦)?(?:再)?(?:说|讲|介绍)(?:得)?(?:具体|详细|清楚)(?:点|些|一点)?(?:吗|呢)?|"
                     r"详细(?:说说|讲讲|点|一点|些)(?:吗|呢)?|展开(?:说说|讲讲)|全部内容(?:呢|是什么)?)[？?。！!～~\s]*$|"
                     r"^(?:and\s+)?(?:tell me more|more (?:details?|info(?:rmation)?)|anything else|what else|go on|and then|details)\b.{0,20}$",
                     re.I)
# a follow-up the classifier called out of scope is read against the item in context only when short
CONTEXT_FOLLOW_UP_CHARS = 30
ANAPHORA_RE = re.compile(r"^(那|那么)?(这个|这项|这件事|这事|这件|这块|这方面|该项|它|此项|这一项|上面|刚才|那个(?![，,、\s])|那项|那一项|那件事|那块|那方面)")
# "这个文件", "这份文件里", "该文件", "上面那个文件", "刚才那份要点": the document in context
DOC_REF_RE = re.compile(r"(这|那|该|此|本|上面|上述|刚才|前面|之前)(一)?(个|份)?(那个|那份|这个|这份)?"
                        r"(文件|要点|通知|文档)(里面|里|中|上)?")
DOC_UNITS_RE = re.compile(r"(责任|牵头|负责|承办|相关)(单位|部门)|哪些(单位|部门)|涉及.{0,2}(单位|部门)")


TAG_RE = re.compile(r"<[^<>]{0,200}>|&[a-zA-Z]{2,8};|&#\d{1,6};")


def strip_markup_tokens(text: str, tokens: Sequence[str]) -> List[str]:
    """Words inside HTML tags or entities ("<script>", "&nbsp;") are markup, not question."""
    markup = set()
    for tag in TAG_RE.findall(text):
        markup.update(w.lower() for w in re.findall(r"[A-Za-z0-9]+", tag))
    return [t for t in tokens if t.lower() not in markup]


def reads_near_words(text: str) -> bool:
    """A word no item uses is read by the documents' words near it in meaning (燃气 → 供气) only in a
    question about what is published: in an errand or another service's question ("汽车站在哪",
    "家里停电了找谁来修") that word is its subject, and e5's word neighbours are loose (汽车站 → 网站).
    The NLU computes near words only for such questions; the answerer uses them only there."""
    return bool(DISCLOSURE_RE.search(text)) and not SERVICE_RE.search(text)


# "…老百姓能知道吗", "会告诉大家吗": asks whether something is made known
MADE_KNOWN_RE = re.compile(r"(?:能|会|可以)(?:不能)?(?:知道|晓得|看到|查到|看得到|查得到|看见)|"
                           r"告诉(?:大家|老百姓|群众|我们|市民)|让(?:大家|老百姓|群众|市民)(?:都)?(?:知道|晓得|看)")


# "政府会不会站出来说句话", "咋不吭声", "会出个说法不": whether the government answers in public
SPEAKS_UP_RE = re.compile(r"(?:站出来|出来|出面)(?:说|讲|表态|回应|澄清|说明)|表态|吭声|(?:给|出)(?:个|一个)?说法|澄清|辟谣")


# "有没有人去核实兑现了没有", "政府会搭理不", "会不会被点名", "僵尸号咋整": whether someone in
# government oversees, checks or deals with it — what the documents' oversight items answer
OVERSIGHT_RE = re.compile(r"有(?:没有)?人(?:去|来|在)?(?:管|盯|核实|核查|跟进|监督|过问|督促|带|教|指导)"
                          r"|(?:政府|政务|部门|单位|上面|上级|上头|官方|领导)[\u4e00-\u9fff]{0,4}?(?:会|能|要)?(?:不会|不能|不要)?"
                          r"(?:管|搭理|理会|理睬|过问|回应|处理|整顿|整治|整|清理|督促|通报|批评|培训|指导|推广)"
                          r"|会不会被|会被[\u4e00-\u9fff]{1,4}?(?:吗|不|么|啊)")


# "老家的证明能在当地办吗", "跑好多窗口，能不能一趟搞完", "能不能合在一起办": whether the government's
# service reforms let it be done elsewhere, at once or online — what the documents publish about them
REFORM_ASK_RE = re.compile(r"(?:能|可以|可不可以|能不能)(?:在)?(?:当地|外地|外省|异地|就近|网上|手机上|线上)(?:就)?办"
                           r"|不(?:用|回|必)(?:回)?(?:去|老家|来|跑)[\u4e00-\u9fff]{0,6}?办"
                           r"|(?:一趟|一次|一回)(?:就)?(?:办完|办好|搞定|搞完|弄完|办成)|(?:合|并|打包)(?:在一起|成一个|到一起)?办"
                           r"|跑(?:好多|好几个|几个|多个|很多)(?:个)?(?:窗口|部门|地方)")

# "答应办的好事办到哪一步了", "搞得么样哒": how far the government's own work has got (its
# progress is published; one's own case is an errand, SERVICE_RE/PERSONAL_RECORD_RE)
PROGRESS_ASK_RE = re.compile(r"(?:办|做|干|搞|弄|进行|推进|落实)(?:到|得)(?:了)?(?:哪一步|哪步|什么程度|哪个程度|怎么样|怎样|么样|咋样|如何)"
                             r"|进展(?:如何|怎么样|怎样|咋样)|(?:兑现|落实)(?:了)?(?:没有|没|吗|冇)")

# "好点子能报上去吗", "能当样板让别的单位学吗": whether a unit's own practice is reported up or
# spread — what the documents ask of the units
SHARE_UP_RE = re.compile(r"报上去|往上报|上报|当(?:成|作)?(?:样板|经验|典型|榜样)"
                         r"|(?:让|给|供)(?:别的|其他|其它|兄弟)(?:单位|部门|地方)(?:也)?(?:照着)?(?:学|参考|借鉴)")


# "去哪里能确认", "网上会标出来吗", "能贴出来让大家看吗": where one learns or checks it, whether it is
# marked or put up where people see it
WHERE_TO_LEARN_RE = re.compile(r"(?:去|到|在|上)?哪(?:里|儿)?(?:能|可以|去|才能)?(?:确认|核实|核对|了解|打听|查证|弄清|搞清|查|看|找)"
                               r"|哪个(?:栏目|网站|平台|专栏|地方|窗口)"
                               r"|标注|标明|标出|注明|(?:放|贴|挂|晒|亮|拿)(?:出来|到网上|在网上)|张榜"
                               # "以前的老计划现在还能翻出来看吗": whether old records can still be found
                               r"|翻(?:得)?(?:出来|到)")

PUBLISHED_QUESTION_RES = (DISCLOSURE_RE, DISCLOSURE_ASK_RE, MADE_KNOWN_RE, SPEAKS_UP_RE, OVERSIGHT_RE, REFORM_ASK_RE,
                          PROGRESS_ASK_RE, SHARE_UP_RE, WHERE_TO_LEARN_RE)


def asks_what_is_published(text: str) -> bool:
    """A question about what is published, where to see it, who sees to it, whether the government
    answers in public, oversees its work or reports how far it has got — not an errand."""
    return any(p.search(text) for p in PUBLISHED_QUESTION_RES) and not SERVICE_RE.search(text)


def _positions(text: str, word: str) -> List[int]:
    out, k = [], text.find(word)
    while k >= 0:
        out.append(k)
        k = text.find(word, k + 1)
    return out


@dataclass
class Query:
    text: str
    tokens: Sequence[str]
    intent: Optional[str] = None
    departments: List[str] = field(default_factory=list)
    item_ref: Optional[str] = None
    current_doc: Optional[str] = None
    current_item: Optional[int] = None
    scoring: str = ""  # the text without greetings and fillers (bot.nlp.normalize.scoring_text)
    doc_scope: Optional[str] = None  # "这个文件…" with several documents: only current_doc's items
    dense: Optional[list] = None  # items' dense scores (bot.retrieval.dense.DenseHit), best first
    near: Optional[Dict[str, List[str]]] = None  # question words no item uses → documents' words near them
    trace: Optional[dict] = None  # evaluation only (ZWZX_TRACE): the retrieval's scores for this question


class Answerer:
    def __init__(self, kb: KnowledgeBase, index: PolicyIndex):
        self.kb = kb
        self.index = index

    # ------------------------------------------------------------------ entry
    def answer(self, q: Query) -> Reply:
        reply = self._answer(q)
        if q.trace is not None:  # evaluation only (TRACE): what the words and the meaning found
            reply.extra["trace"] = q.trace
        if reply.kind == "answer" and self.mostly_foreign(q.text) and reply.texts:
            reply.texts.insert(1, CHINESE_NOTE)
        return reply

    @staticmethod
    def mostly_foreign(text: str) -> bool:
        text = text or ""
        latin = sum(len(w) for w in LATIN_WORD_RE.findall(text))
        return latin >= 8 and latin > 2 * len(CJK_RE.findall(text))

    def _answer(self, q: Query) -> Reply:
        q.text = normalize_text(q.text) if q.text else ""
        q.scoring = scoring_text(q.text) or q.text
        written = self.kb.with_terms_as_written(q.scoring)
        if written != q.scoring:  # "双随机 一公开": the term as the documents write it, one word
            q.text, q.scoring = self.kb.with_terms_as_written(q.text), written
            q.tokens = default_segmenter().words(written)
        text = q.text
        if q.item_ref:  # a button the citizen clicked: answer exactly that item
            doc_id, _, num = q.item_ref.partition("#")
            if q.intent == "ask_document_info" and self.kb.document(doc_id):
                q.current_doc = doc_id
                return self.document_info(q)
            item = self.kb.item(doc_id, int(num)) if num.isdigit() else None
            if item:
                mode = "full" if q.intent == "ask_full_text" else "policy"
                return self._answer_item(doc_id, item, q, mode=mode)
        if not any(ch.isprintable() and not ch.isspace() for ch in text):
            return Reply("fallback", ["您好像没有输入内容。请直接输入您想咨询的政策问题，例如“财政预决算会公开吗？”"])
        if len(text) > MAX_INPUT_CHARS:
            return Reply("fallback", [f"您的消息有 {len(text)} 个字，超过了 {MAX_INPUT_CHARS} 字的上限。"
                                      "请精简后分条发送，或回复“转人工”由工作人员处理。"],
                         buttons=[HUMAN_BUTTON])
        q.tokens = strip_markup_tokens(text, q.tokens)
        self._scope_to_document(q)
        departments = [d for d in (self.kb.canonical_department(x) for x in q.departments) if d]
        departments += [d for d in self.kb.find_departments(text) if d not in departments]
        if LATIN_WORD_RE.search(text):
            departments += [d for d in self.index.departments_in_english(text) if d not in departments]
        q.departments = departments

        intent = q.intent or "ask_policy"
        if intent not in ("request_human", "complain"):
            if OFFICIAL_NAME_RE.search(text) and not DISCLOSURE_RE.search(text):
                return self.official_name_fallback(q)
            if other_document(self.kb, text, departments):
                return self.other_document_fallback(q)
            if self._asks_for_outline(q):
                return self.document_outline(q)  # "这份工作要点主要讲了什么": its parts and items
            own = document_named(self.kb, text)
            if own is not None and not items_naming(self.kb, text):
                q.current_doc = own.doc_id
                bare = DOC_NO_RE.sub(" ", text)
                if not (items_at_position(self.kb, text, own.doc_id) or self._asks_a_topic(bare, q.tokens)):
                    return self.document_info(q)
                # "宁政务办发〔2021〕3号里关于财政信息公开怎么说": a topic, asked of that document
                q.text, q.scoring, q.tokens = bare, scoring_text(bare) or bare, [t for t in q.tokens if t in bare]
                text = bare
                if len(self.kb.documents) > 1:
                    q.doc_scope = own.doc_id
            named = items_naming(self.kb, text)
            if named:  # "国办发〔2020〕50号是关于什么的": the item that cites it
                doc, item, refs = named[0]
                mode = "responsible" if RESPONSIBLE_RE.search(text) and intent == "ask_responsible" else "policy"
                # the sentence that cites it answers, also when the question writes the number its
                # own way ("Xiangcaishui [2021] No. 3": no word of it matches the sentence)
                return self._answer_item(doc.doc_id, item, q, mode, first=self._citing_text(doc, item, refs))
            placed = items_at_position(self.kb, text, own.doc_id if own is not None else q.doc_scope)
            if placed:  # "第（五）项是什么", "第三部分的第一条": the item at that place
                mode = INTENT_MODES.get(intent, "policy")
                if len(placed) > 1:  # each document has one: which document?
                    return self.choose_document([Hit(d.doc_id, it.number, 0.0, 0.0) for d, it in placed[:3]], q)
                doc, item = placed[0]
                lead = self._sole_lead(item)
                if LEAD_UNIT_DUTIES_RE.search(text) and lead:
                    # "第二项牵头的单位还负责哪些事": that unit's duties, not the item again
                    return self.department_duties(lead, q)
                if mode == "policy" and not self._asks_a_topic(POSITION_WORDS_RE.sub(" ", text), q.tokens):
                    mode = "full"  # "第（五）项是什么内容": the item itself, not one sentence of it
                return self._answer_item(doc.doc_id, item, q, mode)
        cited = self._cited_in_context(q) if intent not in ("request_human", "complain") else None
        if cited is not None:  # "依据哪个文件" after an item that cites documents
            return cited
        if q.doc_scope and self._asks_document_units(q):  # "这个文件的责任单位有哪些"
            return self.document_units(q)
        if intent == "ask_document_info" and self._topic_words(q, outside=DOC_INFO_RE):
            # "文件库是什么": a topic of an item, not the document's metadata (the words of the cue
            # itself are not a topic: 发文字号 → 发文/字号, 哪天发的 → 天发)
            intent = "ask_policy"
        if intent == "ask_document_info" or (intent in ("nlu_fallback", "ask_policy")
                                             and self._looks_like_doc_info(q)) or \
                (self.mostly_foreign(text) and EN_DOC_INFO_RE.search(text)):
            return self.document_info(q)
        if departments and (SERVICE_RE.search(text) or UNIT_CONTACT_RE.search(text)) and not DISCLOSURE_RE.search(text) \
                and not DUTIES_RE.search(text):
            return self.service_fallback(q)  # "市数据资源中心几点下班": the office's own service, not its duties
        speaks_for_unit = bool(departments) and self._speaks_for_unit(q)
        if intent == "ask_department_duties" or (departments and self._only_department(q)) or speaks_for_unit or \
                (departments and self.mostly_foreign(text) and (EN_DUTIES_RE.search(text) or EN_AND_THE_UNIT_RE.match(text))):
            if departments:
                return self.department_duties(departments[0], q)
        if not departments and (intent == "ask_department_duties" or DUTIES_RE.search(text)) \
                and UNIT_ANAPHORA_RE.search(text) and (ctx := self._context_item(q)) is not None \
                and (lead := self._sole_lead(ctx[1])) and not self._asks_detail_of(ctx[1], q):
            # "它还负责什么" right after who leads an item: that lead unit's duties (one unit only)
            return self.department_duties(lead, q)
        if intent == "ask_full_text" or ((FULL_TEXT_RE.search(text) or MORE_RE.search(text.strip())) and q.current_item):
            ctx = self._context_item(q)
            if ctx and q.doc_scope:  # "这个文件里关于预算的内容": the item of the document that has it
                words = (q.scoring or q.text, q.tokens, q.departments)
                scoped = [h for h in self.index.search(*words, doc=q.doc_scope) if h.coverage >= ANSWER_COVERAGE]
                if scoped:
                    ctx = (scoped[0].doc, self.kb.item(scoped[0].doc, scoped[0].item))
                elif any(h.coverage >= ANSWER_COVERAGE for h in self.index.search(*words)):
                    return self.fallback(q)  # only another document has it: say so, offer it
            if ctx:
                return self._answer_item(ctx[0], ctx[1], q, mode="full")
            if MORE_RE.search(text.strip()):
                return self.fallback(q)  # "然后呢" with nothing answered before: no topic to go on
        mode = INTENT_MODES.get(intent, "policy")
        if mode == "policy" and RESPONSIBLE_RE.search(text) and intent != "ask_policy":
            mode = "responsible"
        if mode == "policy" and self.mostly_foreign(text) and EN_RESPONSIBLE_RE.search(text):
            mode = "responsible"
        elif mode == "policy" and self.mostly_foreign(text) and EN_DEADLINE_RE.search(text):
            mode = "deadline"
        return self.retrieve(q, mode)

    # --------------------------------------------------------------- helpers
    DOC_GENERIC = {"文件", "要点", "工作要点", "通知", "政务", "公开", "工作", "政务公开", "印发", "发布",
                   "日期", "时间", "文号", "单位", "发文", "标题", "名称", "哪天", "时候", "年", "发文字号",
                   "字号", "主送", "落款", "谁发", "发的", "哪个单位", "这个文件", "份", "几号", "号",
                   "发给", "几月", "几月几号", "下发", "发送", "发到", "收到", "哪一天", "哪年", "月", "日", "哪些单位",
                   "全称", "全名", "题目", "名字", "这份", "份文件", "发出", "签发", "制发", "机关", "机构", "同意",
                   "批准", "审定", "经过"}

    def _topic_words(self, q: Query, outside: Optional[re.Pattern] = None) -> List[str]:
        """The question's words that name a topic; with ``outside``, not the words written inside
        that pattern's matches in the question."""
        words = [w for w in content_words(q.tokens)
                 if w not in self.DOC_GENERIC and not w.isdigit() and len(w) > 1]
        if outside is not None:
            spans = [m.span() for m in outside.finditer(q.text)]
            words = [w for w in words if not any(
                a < k + len(w) and k < b for a, b in spans for k in _positions(q.text, w))]
        for d in self.kb.documents:  # the document's own title and issuer are not a topic
            words = [w for w in words if w not in d.title and w not in (d.issuer or "")]
        return words

    def _asks_a_topic(self, rest: str, tokens: List[str]) -> bool:
        """Whether ``rest`` — the question without the words that named a document or an item's
        place — still names a topic of the documents (a word only some items use)."""
        asked = Query(text=rest, tokens=[t for t in tokens if t in rest])
        return any(self.index.is_topic_word(w) for w in self._topic_words(asked))

    def _looks_like_doc_info(self, q: Query) -> bool:
        """"工作要点的印发日期": about the document itself, no policy topic in it."""
        if not (re.search(r"(文件|要点|通知|这个文)", q.text) and DOC_INFO_RE.search(q.text)):
            return False
        if APPROVED_ISSUE_RE.search(q.text):  # "要点是经过哪个机构同意后印发的": whatever the asker says of themselves
            return True
        return not self._topic_words(q)

    def _only_department(self, q: Query) -> bool:
        words = content_words(q.tokens)
        forms = []
        for d in q.departments:
            forms += [f.lower() for f in self.kb.department_forms(d)]
        # "…在这份工作要点里参与哪些工作": the document named and a duties verb ask nothing more
        rest = [w for w in words if not any(w in f for f in forms)
                and w not in ("政务", "公开", "工作", "职责", "任务", "政务公开", "哪些", "什么", "呢", "那",
                              "参与", "承担", "涉及", "分工", "分到", "分得", "活", "活儿") and w not in self.DOC_GENERIC]
        if not rest:
            return True
        rest = [w for w in rest if not any(w in d.title for d in self.kb.documents)]  # 《…2021年…要点》给…
        # "我是市司法局新入职的同事，想了解我们局在今年的要点里承担哪些任务": a duties question in a
        # long frame — none of the other words names a topic of some items (an everyday word such
        # as 具体, frequent in Chinese in general, names none)
        # (the words of the duties ask itself — 事项 of "涉及哪些事项" — name no topic)
        duties = DUTIES_RE.search(q.text)
        rest = [w for w in rest if not (duties and w in duties.group(0))]
        return bool(duties) and (len(rest) <= 1 or not any(self._names_items(w) for w in rest))

    def _speaks_for_unit(self, q: Query) -> bool:
        """"我是市医保局办公室的，…有哪些工作涉及我们局": the asker names the unit it works for and
        asks that unit's share of the work, with no topic of some items beside it (a word that is
        part of a unit's name — 办公室 — is none)."""
        duties, share = DUTIES_RE.search(q.text), OWN_SHARE_RE.search(q.text)
        if not SELF_UNIT_RE.search(q.text) or not (share or (duties and not duties.group(0).startswith("呢"))):
            return False
        # the words of the unit's names, of the documents' titles (要点) and of the ask itself (涉及) name no topic
        frame = [f.lower() for d in self.kb.departments for f in self.kb.department_forms(d)] + \
            [d.title for d in self.kb.documents] + [m.group(0) for m in (duties, share) if m]
        return not [w for w in content_words(q.tokens) if self._names_items(w) and not any(w in n for n in frame)]

    def _asks_detail_of(self, item, q: Query) -> bool:
        """"它要搞哪些领域的细则" after an item: words of that item's text beyond the duties frame
        (领域, 细则) ask about the item's content, not about what its lead unit does elsewhere."""
        frame = "".join(m.group(0) for m in DUTIES_RE.finditer(q.text))
        return any(len(w) >= 2 and w in item.text and w not in frame and self.index.is_topic_word(w)
                   for w in content_words(q.tokens))

    def _names_items(self, word: str) -> bool:
        """A word of two or more characters that some items use (at most 40 %) and that is not an
        everyday word of Chinese (具体, 今年: frequent in general, they name no topic)."""
        return len(word) >= 2 and self.index.singles_out_items(word) and self.index.general.weight(word) > EVERYDAY_WEIGHT

    def _scope_to_document(self, q: Query) -> None:
        """With several documents loaded, a question that points at the document in context
        ("这个文件里关于预算的内容", "该文件的责任单位有哪些") is searched in that document only;
        the words of the reference itself are not part of what is asked."""
        m = DOC_REF_RE.search(q.text)
        if not m or len(self.kb.documents) < 2 or not q.current_doc or not self.kb.document(q.current_doc):
            return
        q.doc_scope = q.current_doc
        ref = m.group(0)
        q.tokens = [t for t in q.tokens if t not in ref]
        q.scoring = (q.scoring or q.text).replace(ref, "")

    def _asks_document_units(self, q: Query) -> bool:
        """The units of the whole document, no item's topic named."""
        if not DOC_UNITS_RE.search(q.text):
            return False
        rest = DOC_UNITS_RE.sub("", q.scoring or q.text)
        return not [w for w in content_words(q.tokens) if w in rest and len(w) > 1
                    and w not in self.DOC_GENERIC and self.index.is_topic_word(w)]

    def _sole_lead(self, item) -> Optional[str]:
        """The item's lead unit (canonical name) when it has exactly one and the unit has duties listed."""
        leads = [self.kb.canonical_department(u) or u for u in item.lead_units]
        return leads[0] if len(leads) == 1 and self.kb.department_items(leads[0]) else None

    def _cited_in_context(self, q: Query) -> Optional[Reply]:
        """The sentences of the item in context that cite other documents, when the question asks
        which document it follows or who issued it and names no topic the item does not have."""
        ctx = self._context_item(q)
        if ctx is None or not ctx[1].references or not CITED_FOLLOW_UP_RE.search(q.text):
            return None
        doc_id, item = ctx
        if document_named(self.kb, q.text) is not None:
            return None  # the work points themselves ("宁政务办发〔2021〕3号是谁发的")
        if self.mostly_foreign(q.text):
            topic = [w for w in english_words(q.text) if w not in EN_CITED_FRAME and lemma(w) not in EN_CITED_FRAME]
            if not (re.search(r"\b(?:it|that|this|these|those|they|them)\b", q.text, re.I) or not topic) \
                    or len(LATIN_WORD_RE.findall(q.text)) > 8:
                return None  # "Which regulation covers the negative list?": a topic of its own
        elif any(w not in item.text for w in self._topic_words(q, outside=CITED_FOLLOW_UP_RE)
                 if self.index.is_topic_word(w) and not self.index.unknown_word(w)):
            return None  # another item's topic ("那绩效评估的依据是什么"; 好的/具体 are no item's)
        first = self._citing_text(self.kb.document(doc_id), item, item.references)
        if first is None:
            return None
        return self._basis(self._answer_item(doc_id, item, q, "policy", first=first), "cited_documents")

    @staticmethod
    def _citing_text(doc, item, refs) -> Optional[str]:
        """The item's sentences that cite any of ``refs``, as written; the first alone, cut, when together
        they exceed MAX_ANSWER_CHARS; None when none cites them."""
        sentences = [s for s in item.sentences if any(r in s for r in refs)]
        if not sentences:
            return None
        first = "".join(doc.as_written(s) for s in sentences)
        return first if len(first) <= MAX_ANSWER_CHARS else doc.as_written(sentences[0])[:MAX_ANSWER_CHARS]

    def context_follow_up(self, q: Query) -> Optional[Reply]:
        """A message the classifier called out of scope, asked right after an item, whose words
        the documents use are all words of that item ("之前已经编了多少个领域", "How many fields
        already have catalogues?"): a question about that item, answered from it. None when there
        is no item in context, when it is an errand of one's own, or when a word the documents use
        is not in that item ("社保卡挂失" after any item stays out of scope: no item has 挂失)."""
        q.text = normalize_text(q.text) if q.text else ""
        q.scoring = scoring_text(q.text) or q.text
        ctx = self._context_item(q)
        foreign = self.mostly_foreign(q.scoring)
        size = len(LATIN_WORD_RE.findall(q.scoring)) * 3 if foreign else len(q.scoring)  # an English word ≈ 3 characters
        if ctx is None or not q.scoring.strip() or size > CONTEXT_FOLLOW_UP_CHARS:
            return None
        if PERSONAL_RECORD_RE.search(q.text) or SERVICE_RE.search(q.text):
            return None
        item = ctx[1]
        if foreign:
            glossed = [g for g in (self.index.translations(w) for w in english_words(q.scoring)
                                   if w not in EN_FRAME_WORDS) if g]
            known = [[t for t in g if t in self.index.words.idf] for g in glossed]
            known = [g for g in known if g and not all(self.index.words.idf_of(t) < 0.5 for t in g)]
            if not known or not all(any(t in item.text for t in g) for g in known):
                return None
        else:
            words = [w for w in content_words(q.tokens) if len(w) >= 2 and w not in DEADLINE_WORDS]
            known = [w for w in words if w in self.index.words.idf]
            if not known or not all(w in item.text for w in known) or \
                    not any(self.index.is_topic_word(w) for w in known):
                return None
        return self._answer_item(ctx[0], item, q, "policy")

    def _context_item(self, q: Query):
        if q.current_doc and q.current_item:
            item = self.kb.item(q.current_doc, int(q.current_item))
            if item:
                return q.current_doc, item
        return None

    # --------------------------------------------------------------- answers
    def retrieve(self, q: Query, mode: str) -> Reply:
        scope = q.doc_scope
        # every item ranked once; the English reading below weighs all of them, the rest the best five
        near = q.near if q.near and reads_near_words(q.text) else None
        search_text, search_tokens = q.scoring or q.text, q.tokens
        if mode in ("responsible", "deadline") and self.mostly_foreign(search_text):
            # "Who leads the website consolidation?": lead/deadline say what is asked, not about what
            # (CC-CEDICT's 引导 "to lead" would find the items that guide something)
            search_text = EN_FRAME_WORD_RE.sub(" ", search_text)
            search_tokens = [t for t in q.tokens if t.lower() not in EN_FRAME_WORDS]
        ranked = self.index.search(search_text, search_tokens, q.departments, doc=scope, top_k=len(self.index.items),
                                   near=near)
        hits = ranked[:TOP_K]
        if TRACE:
            q.trace = {"words": [[h.item, round(h.coverage, 3), round(h.rank, 3)] for h in ranked[:5]],
                           "meaning": [[h.item, round(h.z, 2), round(h.score, 3),
                                        None if h.contrast is None else round(h.contrast, 3)]
                                       for h in self._dense_hits(q)[:3]], "mode": mode}
        if LISTED_GATE and mode == "policy" and hits and not scope:
            refused = self._policy_content_refusal(q, hits[0])
            if refused is not None:
                return refused
        if not hits and not content_words(q.tokens):
            hits = [h for h in self.index.literal_hits(q.scoring or q.text, q.tokens) if not scope or h.doc == scope]
            if len(hits) > 1:  # several items write the phrase: let the citizen choose
                return self.clarify(hits[:3], q)
        strong = [h for h in hits if h.coverage >= ANSWER_COVERAGE]
        ctx = self._context_item(q)
        # a topic of its own: a word that singles out a few items ("推进", used by most, does not)
        # (a single character — 抓 of "这事是哪个部门在抓" — is not a topic of its own)
        own_topic = bool([w for w in content_words(q.tokens) if w not in DEADLINE_WORDS and w not in EN_FRAME_WORDS
                          and len(w) >= 2 and self.index.is_topic_word(w)]) and not ((ANAPHORA_RE.search(q.text) or (
                              self.mostly_foreign(q.text) and EN_ANAPHORA_RE.search(q.text))) and not scope)
        # "这个文件里关于预算的…": a topic of its own, asked of the document in context, not the item
        topic_in_doc = bool(scope) and own_topic
        # Follow-up without a topic of its own ("那由哪个部门负责？", "有什么时间要求吗")
        if ctx and mode in ("responsible", "deadline", "full") and (not strong or not own_topic) \
                and not topic_in_doc:
            return self._answer_item(ctx[0], ctx[1], q, mode)
        asked = q.scoring or q.text
        follow_up = FOLLOW_UP_RE.search(asked) or (
            SHORT_FOLLOW_UP_RE.search(asked) if len(asked) <= SHORT_FOLLOW_UP_CHARS else None)
        if ctx and mode == "policy" and not own_topic and not topic_in_doc and follow_up:
            # "这个要求具体是什么", "这些都包括哪些", "具体要干啥": more about the item in context
            return self._answer_item(ctx[0], ctx[1], q, mode)
        if ctx and mode == "policy" and own_topic and not topic_in_doc and \
                (follow_up or WHAT_ABOUT_RE.search(q.text.strip())):
            # "具体有哪些领域", "那线上的专栏呢": a word of the item in context, asked right after it,
            # is asked of that item (another item's word — "那反垄断执法呢" — is a new topic)
            # (the words of the follow-up frame itself — 具体涉及 — are not its topic)
            frame = follow_up.group(0) if follow_up and follow_up.re is FOLLOW_UP_RE else ""
            # (a word no item uses — 东西 of "那要统一几样东西啊" — names no other item either)
            topic = [w for w in content_words(q.tokens) if w not in DEADLINE_WORDS and w not in EN_FRAME_WORDS
                     and w not in frame and len(w) >= 2 and self.index.is_topic_word(w)
                     and not self.index.unknown_word(w)]
            short = follow_up is not None and follow_up.re is SHORT_FOLLOW_UP_RE
            # "那政策解读呢" after 一件事一次办: another item's heading names it, a new topic
            core = WHAT_ABOUT_RE.sub(r"\1", q.text.strip())
            elsewhere = not follow_up and len(core) >= 2 and any(
                core in item.title for d, item in self.kb.all_items()
                if (d.doc_id, item.number) != (ctx[0], ctx[1].number)) and core not in ctx[1].title
            if (topic or short) and all(w in ctx[1].text for w in topic) and not elsewhere:
                return self._answer_item(ctx[0], ctx[1], q, mode, [h for h in hits if (h.doc, h.item) ==
                                                                    (ctx[0], ctx[1].number)])
        if CONTEXT_MARGIN is not None and ctx and mode == "policy" and not topic_in_doc and hits \
                and not TOPIC_SWITCH_RE.search(q.text) and not self.mostly_foreign(q.text):
            # "已经编了几个领域", "没按要求完成会怎样" right after an item: the item in context answers
            # it about as well as any other item, so it is asked of that item (a new topic's words
            # — "换个问题，政务新媒体清理整合呢" — are another item's, which this one does not cover;
            # "负面清单呢?" names a topic of its own whatever the item in context writes; "信息公开",
            # words most items use, stays a choice between items)
            close = [h for h in ranked if h.coverage >= hits[0].coverage - CONTEXT_MARGIN]
            mine = next((h for h in close if (h.doc, h.item) == (ctx[0], ctx[1].number)), None)
            if mine is not None and mine.coverage >= WEAK_COVERAGE and len(close) <= CONTEXT_TIES:
                return self._answer_item(ctx[0], ctx[1], q, mode, [mine] + [h for h in hits if h is not mine])
        top_cov = hits[0].coverage if hits else 0.0
        if mode == "policy" and (top_cov < ANSWER_COVERAGE or top_cov < 0.7 or DOC_SELF_RE.search(q.text)):
            # "以什么思想为指导": the notice or preamble, not an item, says it
            # the words naming the document itself ("这份要点") are not what is asked about it
            own = [d.title for d in self.kb.documents]
            tokens = [t for t in q.tokens if t not in ("文件", "通知", "份", "这份", "该文件")
                      and not any(t in title for title in own)]
            passage = self.index.passage_search(q.scoring or q.text, tokens)
            if passage and scope and passage.doc != scope:
                passage = None
            if passage and passage.coverage >= PASSAGE_COVERAGE and (
                    passage.coverage > top_cov + (0.1 if top_cov < ANSWER_COVERAGE else 0.3)
                    or (DOC_SELF_RE.search(q.text) and passage.coverage > top_cov)):
                return self._answer_passage(passage)
        if mode in ("policy", "deadline", "responsible") and (not hits or hits[0].coverage < SERVICE_COVERAGE) \
                and (PERSONAL_RECORD_RE.search(q.text)
                     or (SERVICE_RE.search(q.text) and not DISCLOSURE_RE.search(q.text))) and not scope:
            # "灵活就业人员的社保怎么自己交": doing a personal errand, not what is published about it;
            # one's own record or case is one even when asked of a website (我个人的公积金余额)
            return self.service_fallback(q)
        if self.mostly_foreign(q.text) and hits and not scope:
            # English: the dictionary's words and the meaning each reach the documents loosely;
            # the item best by both together is answered (bot.retrieval.dense.fused_best)
            from bot.retrieval.dense import FUSED_ANSWER, FUSED_ASKS_PUBLISHED, fused_best

            generic = self.index.generic_glosses(q.scoring or q.text)
            fused = fused_best([h for h in ranked if self.index.names_a_topic_of(h, generic)], self._dense_hits(q))
            if fused is not None and (fused.score >= FUSED_ANSWER or fused.score >= FUSED_ASKS_PUBLISHED
                                      and EN_PUBLISHED_RE.search(q.text) and not EN_PERSONAL_RE.search(q.text)) \
                    and self.kb.item(fused.doc, fused.item):
                ordered = sorted(hits, key=lambda h: (h.doc, h.item) != (fused.doc, fused.item))
                return self._basis(self._answer_item(fused.doc, self.kb.item(fused.doc, fused.item), q, mode,
                                                     ordered), "words_and_meaning")
        # a long question telling the citizen's situation ("公交线路调整、票价变化这些事情，公交公司该不该
        # 提前公开") covers little of any item, yet asks what is published and one item is far ahead
        published_lean = mode in ("policy", "responsible") and len(hits) > 1 and not scope \
            and PUBLISHED_LEAN <= hits[0].coverage < WEAK_COVERAGE and hits[0].rank >= LEAN_MARGIN * hits[1].rank \
            and not self.mostly_foreign(q.text) and asks_what_is_published(q.text) \
            and not self._meaning_elsewhere(q, hits[0])
        if (not hits or hits[0].coverage < WEAK_COVERAGE) and not published_lean:
            meant = self._dense_alone(q, hits)
            if meant is not None:  # no word matched, the meaning does: "供水供电公司" → 公共企事业单位
                reply = self._answer_item(meant.doc, self.kb.item(meant.doc, meant.item), q, mode)
                # the meaning is less sure than words: the next items it points at are offered too
                self._offer_related(reply, [h for h in self._dense_hits(q) if self.kb.item(h.doc, h.item)
                                            and (h.doc, h.item) != (meant.doc, meant.item)][:2])
                return self._basis(reply, "meaning")
            if ctx and mode != "policy" and not topic_in_doc:
                return self._answer_item(ctx[0], ctx[1], q, mode)
            suggested = self._suggest_by_meaning(q, hits)
            if suggested is not None:
                return suggested
            return self.fallback(q)
        if self.mostly_foreign(q.text):
            # English words reach the documents through a dictionary, loosely; the meaning's clear
            # favourite among the items they reach goes first
            from bot.retrieval.dense import confident_alone

            meant = confident_alone(self._dense_hits(q), True)
            if meant is not None and (meant.doc, meant.item) in [(h.doc, h.item) for h in hits[:3]
                                                                 if h.coverage >= WEAK_COVERAGE]:
                hits = self._dense_first(q, hits, [h for h in hits[:3] if h.coverage >= WEAK_COVERAGE])
            elif meant is not None and hits[0].coverage < FOREIGN_SURE and self.kb.item(meant.doc, meant.item):
                # the dictionary reaches the documents only weakly ("double random, one public"), the meaning clearly
                return self._basis(self._answer_item(meant.doc, self.kb.item(meant.doc, meant.item), q, mode,
                                                     self._dense_first(q, hits, hits)), "meaning_among_words")
        literal = self._literal_among_tied(q, hits)
        if literal is not None:
            # "政务公开工作的主管部门是哪个单位": every item covers 政务/公开/工作 alike, one writes the
            # question's run of words (政务公开工作主管部门) — that item is meant
            hits = [literal] + [h for h in hits if h is not literal]
        top = hits[0]
        runner = hits[1] if len(hits) > 1 else None
        decisive = runner is None or top.rank >= CLARIFY_MARGIN * runner.rank or \
            top.coverage - runner.coverage >= 0.3 or literal is not None
        clearly_best = (top.coverage >= CLEAR_COVERAGE and (runner is None or top.rank >= CLEAR_MARGIN * runner.rank)) \
            or (top.coverage >= WEAK_COVERAGE and runner is not None and top.rank >= FAR_MARGIN * runner.rank)
        if not clearly_best and runner is not None and (
                (top.coverage >= CLEAR_COVERAGE and top.rank >= LEAN_MARGIN * runner.rank)
                or (top.coverage >= WEAK_COVERAGE and top.rank >= LEAN_FAR_MARGIN * runner.rank)):
            # well ahead, a little less than clearly ("燃气公司调价，有没有要求提前公布"): answered
            # unless the meaning clearly singles out another item ("政府开会定的事咋查": 文件库's 12
            # by the words, the meaning's 11) — then the choice below weighs both
            clearly_best = not self._meaning_elsewhere(q, top)
        clearly_best = clearly_best or published_lean  # (below WEAK_COVERAGE: no literal run was looked for)
        generic = (runner is not None and top.rank < CLEAR_MARGIN * runner.rank
                   and not [w for w in content_words(q.tokens) if self.index.is_topic_word(w)])
        if generic and literal is None and len(candidates := [h for h in hits if h.coverage >= ANSWER_COVERAGE]) > 1:
            # "平台建设", "信息公开": only words most items use, several items fit: let the citizen choose
            return self._clarify_or_pick(candidates[:3], q, mode, hits)
        if top.coverage >= ANSWER_COVERAGE:
            # another document answers it about as well ("政务公开培训"): do not pick one silently
            per_doc = [top]
            for h in hits[1:]:
                if h.doc not in {p.doc for p in per_doc} and h.coverage >= ANSWER_COVERAGE \
                        and h.rank >= DOC_CHOICE_RANK * top.rank:
                    per_doc.append(h)
            if len(per_doc) > 1:
                return self.choose_document(per_doc[:3], q)
        if top.coverage >= ANSWER_COVERAGE or clearly_best:
            if not decisive:  # a close call between items the words both cover: the meaning decides
                hits = self._dense_first(q, hits, [h for h in hits[:3] if h.coverage >= ANSWER_COVERAGE])
                top = hits[0]
            reply = self._answer_item(top.doc, self.kb.item(top.doc, top.item), q, mode, hits)
            if not decisive:
                # Close call: answer the best match, offer the runners-up as related items.
                self._offer_related(reply, [h for h in hits[1:3] if h.coverage >= ANSWER_COVERAGE])
            return reply
        candidates = [h for h in hits if h.coverage >= WEAK_COVERAGE][:3]
        return self._clarify_or_pick(candidates, q, mode, hits)

    def _meaning_elsewhere(self, q: Query, top: Hit) -> bool:
        """The meaning clearly singles out another item than the words' best ("政府开会定的事咋查":
        文件库's 12 by the words, the meaning's 11)."""
        from bot.retrieval.dense import Z_OVER_WORDS

        dense = self._dense_hits(q)
        return bool(dense) and (dense[0].doc, dense[0].item) != (top.doc, top.item) and dense[0].z >= Z_OVER_WORDS

    def _literal_among_tied(self, q: Query, hits: List[Hit]) -> Optional[Hit]:
        """Among items the words tie on (about equal coverage, at least ANSWER_COVERAGE), the only
        one that writes the question's longest run of words (at least LITERAL_RUN characters, 的
        aside: "主管部门" of "政务公开工作的主管部门" is the item's 政务公开工作主管部门)."""
        if len(hits) < 2 or hits[0].coverage < ANSWER_COVERAGE or hits[1].coverage < hits[0].coverage - LITERAL_TIE:
            return None
        tied = [h for h in hits if h.coverage >= hits[0].coverage - LITERAL_TIE]
        runs = self.index.literal_hits(q.scoring or q.text, [t for t in q.tokens if t != "的"], top_k=2)
        if len(runs) != 1 or len(runs[0].matched[0]) < LITERAL_RUN:
            return None
        return next((h for h in tied if (h.doc, h.item) == (runs[0].doc, runs[0].item)), None)

    def _dense_alone(self, q: Query, lexical: List[Hit]):
        """The item the question's meaning singles out when words matched none well: clearly
        on its own, or as the clear favourite among the items the words matched weakly."""
        from bot.retrieval.dense import ANSWER_WITHOUT_WORDS, agreeing, answers_alone, confident_alone

        hits = self._dense_hits(q)
        top = (confident_alone(hits, self.mostly_foreign(q.text)) if ANSWER_WITHOUT_WORDS else None) \
            or answers_alone(hits, self.mostly_foreign(q.text)) \
            or agreeing(lexical, hits)
        return top if top is not None and self.kb.item(top.doc, top.item) else None

    def _suggest_by_meaning(self, q: Query, lexical: List[Hit]) -> Optional[Reply]:
        """No item answers in words, but the meaning points clearly at one: offer it (and the
        words' best) as buttons with the way to a person, instead of a bare "没有找到" — nothing
        is cited, the citizen chooses."""
        from bot.retrieval.dense import Z_SUGGEST, Z_SUGGEST_NEAR

        dense = [h for h in self._dense_hits(q) if self.kb.item(h.doc, h.item)]
        if not dense:
            return None
        top = dense[0]
        # a clear favourite, or a fair one when the question is nearer the documents than any
        # question the bot refuses ("今天天气怎么样" is not offered policy items)
        nearer = top.contrast is not None and top.score - top.contrast >= 0 and top.z >= Z_SUGGEST_NEAR
        if top.z < Z_SUGGEST and not nearer:
            return None
        if nearer and DISCLOSURE_ASK_RE.search(q.text) and not SERVICE_RE.search(q.text):
            # "政府答应办的好事办到哪一步了，会公布吗": asked whether something is published or
            # overseen — what these documents are about — and nearer them than any refused question
            reply = self._answer_item(top.doc, self.kb.item(top.doc, top.item), q, "policy")
            self._offer_related(reply, [h for h in dense[1:3]])
            return self._basis(reply, "meaning_disclosure")
        picks = [Hit(dense[0].doc, dense[0].item, 0.0, 0.0)]
        for h in list(lexical[:2]) + [Hit(d.doc, d.item, 0.0, 0.0) for d in dense[1:3]]:
            if len(picks) < 3 and (h.doc, h.item) not in [(p.doc, p.item) for p in picks]:
                picks.append(h)
        reply = self.clarify(picks[:3], q)
        reply.texts = ["我没有找到与您的问题完全对应的内容。您是不是想了解下面这些工作？也可以回复“转人工”由工作人员解答。"]
        reply.extra["reason"] = "suggested_by_meaning"
        return self._basis(reply, "meaning")

    @staticmethod
    def _dense_hits(q: Query) -> list:
        """The question's dense item scores, best first, within the document in scope."""
        return [h for h in (q.dense or []) if not q.doc_scope or h.doc == q.doc_scope]

    def _offer_related(self, reply: Reply, hits) -> None:
        """Buttons "相关：第（N）项 …" for other items (``.doc``, ``.item``) beside an answer."""
        for h in hits:
            reply.buttons.append({"title": f"相关：{self.kb.item(h.doc, h.item).label}",
                                  "payload": "/ask_policy" + json.dumps({"item_ref": f"{h.doc}#{h.item}"},
                                                                        ensure_ascii=False)})

    @staticmethod
    def _basis(reply: Reply, basis: str) -> Reply:
        """What decided the answer beyond the words (shown on the card for staff and evaluation)."""
        reply.extra["basis"] = basis
        return reply

    def _dense_first(self, q: Query, hits: List[Hit], close: List[Hit]) -> List[Hit]:
        """``hits`` with the meaning's clear favourite among ``close`` moved to the front."""
        from bot.retrieval.dense import pick_among

        dense = self._dense_hits(q)
        pick = pick_among(dense, [(h.doc, h.item) for h in close]) if len(close) > 1 else None
        if pick is None:
            return hits
        return [h for h in hits if (h.doc, h.item) == (pick.doc, pick.item)] + \
            [h for h in hits if (h.doc, h.item) != (pick.doc, pick.item)]

    def _clarify_or_pick(self, candidates: List[Hit], q: Query, mode: str, hits: List[Hit]) -> Reply:
        """Several items share the question's words: the one its meaning singles out is
        answered; otherwise the citizen chooses (the meaning's best item among the buttons)."""
        from bot.retrieval.dense import Z_PICK, pick_among

        dense = self._dense_hits(q)
        pick = pick_among(dense, [(h.doc, h.item) for h in candidates])
        if pick is not None:
            ordered = self._dense_first(q, hits, candidates)
            return self._basis(self._answer_item(pick.doc, self.kb.item(pick.doc, pick.item), q, mode, ordered),
                               "meaning_among_words")
        from bot.retrieval.dense import Z_OVER_WORDS, answers_alone

        if dense and hits and (dense[0].doc, dense[0].item) == (hits[0].doc, hits[0].item) and \
                dense[0].z >= Z_AGREE_WORDS and (dense[0].contrast is None or dense[0].score >= dense[0].contrast) \
                and self.kb.item(hits[0].doc, hits[0].item):
            # the words' best item is also the meaning's best ("老百姓在网上反映的问题，政府会出面回应吗"):
            # two independent readings agree — answered, the other candidates offered beside it
            top = hits[0]
            reply = self._answer_item(top.doc, self.kb.item(top.doc, top.item), q, mode, hits)
            self._offer_related(reply, [h for h in candidates if (h.doc, h.item) != (top.doc, top.item)][:2])
            return self._basis(reply, "words_and_meaning")
        meant = answers_alone(dense, self.mostly_foreign(q.text))
        if meant is not None and meant.z >= Z_OVER_WORDS and self.kb.item(meant.doc, meant.item):
            # the words matched a few items weakly, the meaning clearly another ("种粮补贴发了多少" →
            # 财政资金): answered, the words' items offered beside it
            reply = self._answer_item(meant.doc, self.kb.item(meant.doc, meant.item), q, mode)
            self._offer_related(reply, [h for h in candidates if (h.doc, h.item) != (meant.doc, meant.item)][:2])
            return self._basis(reply, "meaning")
        if dense and dense[0].z >= Z_PICK and candidates and \
                (dense[0].doc, dense[0].item) not in [(h.doc, h.item) for h in candidates] and \
                self.kb.item(dense[0].doc, dense[0].item):
            # the meaning's clear favourite takes the last button
            top = dense[0]
            candidates = candidates[:2] + [Hit(top.doc, top.item, 0.0, 0.0)]  # at most three buttons
        return self.clarify(candidates, q)

    def _answer_passage(self, passage) -> Reply:
        doc = self.kb.document(passage.doc)
        text = doc.as_written(passage.sentence if len(passage.sentence) <= MAX_ANSWER_CHARS else passage.clause)
        source = source_line(doc)
        return Reply("answer", [text, source], [doc_citation(doc)], [],
                     slots={"current_doc": doc.doc_id}, card_texts=[source])

    def _answer_item(self, doc_id: str, item, q: Query, mode: str, hits: List[Hit] = (),
                     first: Optional[str] = None) -> Reply:
        """The item answered in ``mode``; in policy mode ``first`` (when given) is the text answered
        instead of the sentences best matching the question."""
        doc = self.kb.document(doc_id)
        cites = [citation(doc, item)]
        for h in hits[1:3]:
            # secondary citations only when they are nearly as good
            if h.coverage >= ANSWER_COVERAGE and h.rank >= 0.6 * hits[0].rank:
                cites.append(citation(self.kb.document(h.doc), self.kb.item(h.doc, h.item)))
        depts = item_departments(item)
        slots = {"current_doc": doc_id, "current_item": float(item.number)}
        source = f"{source_line(doc, item)}\n{units_sentence(item)}"
        if mode == "full":
            body = "\n".join(doc.as_written(line) for line in item.body.split("\n"))  # quoted as published
            texts = [f"{item.label}\n{body}", source]
            return Reply("answer", texts, cites[:1], depts, slots=slots, card_texts=[source])
        if mode == "responsible":
            lead = "、".join(item.lead_units)
            resp = "、".join(u for u in item.responsible_units)
            if lead:
                first = f"“{item.title}”这项工作由{lead}牵头" + (f"，{resp}按职责分工负责。" if resp else "。")
            else:
                first = f"“{item.title}”这项工作未指定牵头单位，由{resp}按职责分工负责。"
            detail = self._sentence_naming_another_body(doc_id, item, q, hits)
            if detail and len(detail) + len(first) < MAX_ANSWER_CHARS:
                first = f"{doc.as_written(detail)}\n{first}"  # "要听哪个上级部门的统一部署": the sentence says it
            texts = [first[:MAX_ANSWER_CHARS], source_line(doc, item)]
        elif mode == "deadline":
            timed = [s for s in item.sentences if any(d in s for d in item.deadlines)]
            written = {s: doc.as_written(s) for s in timed}
            # "公示期多久": the timed sentence about what is asked comes first
            asked = [w for w in content_words(q.tokens) if len(w) >= 2 and w not in DEADLINE_WORDS]
            timed.sort(key=lambda s: -sum(w in s for w in asked))
            if timed:
                first = "；".join(written[s] for s in timed[:2])
                if len(first) > MAX_ANSWER_CHARS:
                    first = written[timed[0]][:MAX_ANSWER_CHARS - 1] + "…"
                first = f"关于时间要求：{first}" if len(first) + 7 <= MAX_ANSWER_CHARS else first
            else:
                first = f"“{item.title}”这一项没有规定具体的完成时限，按文件要求持续推进。"
            texts = [first, source]
        else:
            hit = next((h for h in hits if h.doc == doc_id and h.item == item.number), None) or \
                Hit(doc_id, item.number, 0.0, 0.0)
            if first is None:
                sentences = self.index.best_sentences(hit, q.scoring or q.text, q.tokens, limit=MAX_ANSWER_CHARS)
                first = "".join(doc.as_written(s) for s in sentences) or doc.as_written(item.sentences[0])
            texts = [first, source]
        texts.append(FULL_TEXT_HINT)
        # the card (widget) shows the source, units and the way to the full text itself
        return Reply("answer", texts, cites, depts, slots=slots, card_texts=texts[1:])

    def _sentence_naming_another_body(self, doc_id: str, item, q: Query, hits: Sequence[Hit]) -> str:
        """The item's sentence that answers a "which body" question about a detail of the item
        when that sentence names a body other than the item's units ("在长沙市数据资源管理局统一
        部署下完善……智能咨询功能"): the question's own words beyond the item's heading must be in it."""
        hit = next((h for h in hits if h.doc == doc_id and h.item == item.number), None) or \
            Hit(doc_id, item.number, 0.0, 0.0)
        best = self.index.best_sentences(hit, q.scoring or q.text, q.tokens, limit=MAX_ANSWER_CHARS, max_sentences=1)
        if not best:
            return ""
        sentence = best[0]
        # "…力度；对基层……要担负起主体责任": the body is the subject of the clause before the "；"
        at = item.sentences.index(sentence) if sentence in item.sentences else 0
        while at > 0 and item.sentences[at - 1].endswith("；") and not BODY_NAME_RE.search(sentence):
            at -= 1
            sentence = item.sentences[at] + sentence
        units = set(item.lead_units) | set(item.responsible_units)
        bodies = [b for b in BODY_NAME_RE.findall(BOOK_TITLE_RE.sub("", sentence))
                  if not any(b in u or u in b for u in units)]
        if not bodies:
            return ""
        title_words = self.index.title_sets[self.index.position(doc_id, item.number)]
        detail_words = [w for w in content_words(q.tokens) if len(w) >= 2 and w not in title_words
                        and w not in ("部门", "单位", "哪个", "哪些", "负责", "牵头") and w in sentence]
        return sentence if detail_words else ""

    def department_duties(self, department: str, q: Query) -> Reply:
        data = self.kb.departments.get(department)
        refs = self.kb.department_items(department)
        if q.doc_scope and any(d.doc_id == q.doc_scope for d, _, _ in refs):
            refs = [r for r in refs if r[0].doc_id == q.doc_scope]  # "这个文件里县财政局负责什么"
        if data is not None and not refs:
            # a body no item names among its units, but an item's text gives it a task
            # ("市人民政府办公室要认真履行……法定职责"): that item answers
            forms = [f for f in self.kb.department_forms(department) if len(f) >= 3]
            for doc, item in self.kb.all_items():
                if q.doc_scope and doc.doc_id != q.doc_scope:
                    continue
                if any(f in s for s in item.sentences for f in forms):
                    return self._answer_item(doc.doc_id, item, q, "policy")
        if data is None or not refs:
            return Reply("fallback", [f"在现有政策文件中没有查到{department}承担的政务公开工作。{HANDOFF_HINT}"],
                         departments=[department] if data else [], buttons=[HUMAN_BUTTON],
                         slots={"department": department})
        lead = [(d, i) for d, i, r in refs if r == "lead"]
        shared = [(d, i) for d, i, r in refs if r != "lead"]
        refs_sorted = lead + shared
        lines = [f"{department}在政务公开工作要点中牵头 {len(lead)} 项、参与 {len(shared)} 项工作："]
        for doc, item in refs_sorted:
            role = "牵头" if (doc, item) in lead else "参与"
            prefix = f"《{doc.title}》" if len(self.kb.documents) > 1 else ""
            lines.append(f"· {prefix}{item.label}（{role}）")
        cites = [citation(d, i) for d, i in refs_sorted]
        slots = {"department": department}
        if len(refs_sorted) == 1:
            slots.update(current_doc=refs_sorted[0][0].doc_id, current_item=float(refs_sorted[0][1].number))
        buttons = [{"title": i.label, "payload": "/ask_full_text" + json.dumps(
            {"item_ref": f"{d.doc_id}#{i.number}"}, ensure_ascii=False)} for d, i in refs_sorted[:5]]
        return Reply("answer", ["\n".join(lines), "点击条目可查看该项全文。"], cites, [department],
                     buttons=buttons, slots=slots)

    def document_units(self, q: Query) -> Reply:
        """The lead units of every item of the document in context, then the other units."""
        doc = self.kb.document(q.doc_scope)
        lead, others = {}, []
        for item in doc.items:
            for u in item.lead_units:
                lead.setdefault(u, []).append(item.label.split(" ")[0][1:-1])  # 第（五）项 → （五）
            others += [u for u in item.responsible_units if u not in others]
        parts = [f"{u}（第{'、'.join(nums)}项）" for u, nums in lead.items()]
        first = f"《{doc.title}》共{len(doc.items)}项工作"
        first += ("，牵头单位：" + "、".join(parts)) if parts else ""
        rest = [u for u in others if u not in lead]
        first += ("；按职责分工负责：" + "、".join(rest)) if rest else ""
        first += "。"
        if len(first) > MAX_ANSWER_CHARS:
            first = first[:MAX_ANSWER_CHARS - 1] + "…"
        units = list(lead) + rest
        return Reply("answer", [first, "问具体某项工作由谁负责，可直接说出事项名称。"], [doc_citation(doc)], units,
                     slots={"current_doc": doc.doc_id})

    def _document_asked(self, q: Query):
        """The document a question about a whole document means: the one it names (title or number),
        else the one in context, else the only one loaded; None when several could be meant."""
        doc = self.kb.document(q.current_doc) if q.current_doc else None
        for d in self.kb.documents:
            if d.title in q.text or (d.doc_number and d.doc_number in q.text):
                doc = d
        if doc is None and len(self.kb.documents) == 1:
            doc = self.kb.documents[0]
        return doc

    def document_info(self, q: Query) -> Reply:
        doc = self._document_asked(q)
        if doc is None:
            buttons = [{"title": f"《{d.title}》", "payload": "/ask_document_info" + json.dumps(
                {"item_ref": f"{d.doc_id}#0"}, ensure_ascii=False)} for d in self.kb.documents]
            return Reply("clarify", ["您想了解哪一份文件？"], [], buttons=buttons,
                         extra={"candidates": [doc_citation(d) for d in self.kb.documents]})
        parts = [f"《{doc.title}》"]
        if doc.issuer:
            parts.append(f"由{doc.issuer}")
        if doc.date:
            parts.append(f"于{doc.date}印发")
        first = "".join(parts)
        if doc.doc_number:
            first += f"，文号为{doc.doc_number}"
        if doc.recipients:
            first += f"，主送{'，'.join(doc.recipients)}"
        first += "。"
        if doc.notice and APPROVAL_RE.search(q.text) and APPROVAL_RE.search(doc.notice):
            # "经宁乡市政务公开政务服务工作领导小组同意，现将《…》印发给你们": the approval, then the facts
            first = doc.as_written(doc.notice) + first
        if doc.notice_title and re.search(r"标题|全称|题目|名称|叫什么|\btitle\b|\bcalled\b", q.text, re.I):
            first = f"通知的标题全称为“{doc.notice_title}”。" + first
        lead_units = []
        return Reply("answer", [first[:MAX_ANSWER_CHARS]], [doc_citation(doc)], lead_units,
                     slots={"current_doc": doc.doc_id})

    def clarify(self, hits: List[Hit], q: Query, name_docs: bool = False) -> Reply:
        buttons, candidates = [], []
        several = name_docs or len({h.doc for h in hits}) > 1
        for h in hits:
            doc, item = self.kb.document(h.doc), self.kb.item(h.doc, h.item)
            candidates.append(citation(doc, item))
            buttons.append({"title": f"《{doc.title}》{item.label}" if several else item.label,
                            "payload": "/ask_policy" + json.dumps({"item_ref": f"{h.doc}#{h.item}"},
                                                                  ensure_ascii=False)})
        buttons.append(HUMAN_BUTTON)
        # Candidates are not citations: nothing has been answered yet.
        return Reply("clarify", ["我不太确定您问的是哪一项工作，您想了解的是下面哪一项？"], [],
                     buttons=buttons, extra={"candidates": candidates})

    def choose_document(self, hits: List[Hit], q: Query) -> Reply:
        """Several documents answer the question: one button per document (its title and the
        item that answers), the citizen chooses; "这个文件…" follow-ups then stay on it."""
        reply = self.clarify(hits, q)
        reply.texts = [f"{len(hits)}份文件中都有相关内容：" + "；".join(
            f"《{self.kb.document(h.doc).title}》{self.kb.item(h.doc, h.item).label}" for h in hits)
            + "。您想了解哪一份文件的规定？"]
        reply.extra["reason"] = "several_documents"
        return reply

    def _policy_content_refusal(self, q: Query, top: Hit) -> Optional[Reply]:
        """What a policy says, asked of a topic the documents only list or do not mention, is not
        what these documents answer (what is published, where, by whom)."""
        foreign = self.mostly_foreign(q.text)
        if not foreign and EXPLAIN_TO_ME_RE.search(q.text) and self._topic_unknown(q, top):
            # "公积金贷款最新政策解读一下": the assistant asked to explain a policy no document mentions
            # (not whether the government publishes an interpretation of it)
            return self.policy_content_fallback(q, listed=False)
        term = None if foreign else self._unwritten_term(q.text)
        if term:
            return self.term_fallback(q, term)
        if (LISTED_ASK_EN_RE if foreign else LISTED_ASK_RE).search(q.text):
            return None  # asks whether it is published, seen, responded to: the documents' subject
        if self.index.listed_only(top, LISTED_FRAME_RE) and (LISTED_CONTENT_EN_RE if foreign else LISTED_CONTENT_RE).search(q.text):
            # "政府对养老金调整有什么政策": the pension itself, which an item only names among the
            # topics of public concern
            return self.policy_content_fallback(q, listed=True)
        if not foreign and (LISTED_CONTENT_RE.search(q.text) or CONTENT_ASK_RE.search(q.text)) \
                and self._topic_unknown(q, top):
            # "生育津贴是按什么标准算的": a policy no document mentions
            return self.policy_content_fallback(q, listed=False)
        return None

    def _unwritten_term(self, text: str) -> Optional[str]:
        """The term a bare "什么是X" asks about when no document writes it: few of its character pairs
        appear in the documents, and no run of the documents differs from it by one character (a
        typo: 集约华 for 集约化). Counted terms (三个高地) and the document's parts are not terms."""
        m = TERM_ASK_RE.match(text.strip())
        term = m and (m.group("a") or m.group("b"))
        if not term or TERM_FRAME_RE.search(term):
            return None
        corpus = self._written
        pairs = [term[i:i + 2] for i in range(len(term) - 1)]
        if sum(p in corpus for p in pairs) >= TERM_KNOWN_SHARE * len(pairs):
            return None
        n = len(term)
        for i in range(len(corpus) - n + 1):
            if sum(a != b for a, b in zip(term, corpus[i:i + n])) <= 1:
                return None
        return term

    @cached_property
    def _written(self) -> str:
        """Every document's items and headings, punctuation removed (built on first use)."""
        return re.sub(r"[^\u4e00-\u9fffA-Za-z0-9]", "", "".join(item.title + item.text for _, item in self.kb.all_items()))

    def term_fallback(self, q: Query, term: str) -> Reply:
        return Reply("out_of_scope", [f"抱歉，政务公开工作要点中没有“{term}”的内容，我无法解释它的含义。"
                                      "我解答的是政务公开工作（哪些信息公开、在哪里查、由哪个部门负责）；"
                                      "相关政策请拨打12345政务服务便民热线咨询。如需人工帮助，请回复“转人工”。"],
                     buttons=[HUMAN_BUTTON])

    def _topic_unknown(self, q: Query, top: Hit) -> bool:
        """No item covers half of the question, and it has a word no item uses (公积金, 生育津贴)."""
        return top.coverage < UNKNOWN_TOPIC_COVERAGE and any(self.index.unknown_word(w) for w in content_words(q.tokens))

    def policy_content_fallback(self, q: Query, listed: bool) -> Reply:
        note = CHINESE_NOTE if self.mostly_foreign(q.text) else ""
        why = "政务公开文件只把它列为需要公开或回应的领域之一" if listed else "政务公开文件中没有这项政策的内容"
        return Reply("out_of_scope", [note + f"抱歉，您问的这项具体政策不在我能解答的范围内：{why}。"
                                      "我解答的是政务公开工作（哪些信息公开、在哪里查、由哪个部门负责）；具体政策请拨打12345政务服务便民热线咨询。"
                                      "如需人工帮助，请回复“转人工”。"], buttons=[HUMAN_BUTTON])

    def official_name_fallback(self, q: Query) -> Reply:
        note = CHINESE_NOTE if self.mostly_foreign(q.text) else ""
        return Reply("out_of_scope", [note + "抱歉，政务公开工作要点中没有各单位负责人的姓名等信息，我无法回答。"
                                      "单位领导信息一般在该单位网站的“机构概况”或“领导信息”栏目公开，"
                                      "您也可以拨打12345政务服务便民热线咨询。"])

    def other_document_fallback(self, q: Query) -> Reply:
        titles = "、".join(f"《{d.title}》" for d in self.kb.documents)
        return Reply("out_of_scope", [f"抱歉，我这里收录的是{titles}，没有您问的其他地区或年份的文件。"
                                      "其他地区、其他年份的政务公开工作要点，请到当地政府门户网站的政府信息公开专栏查看。"
                                      "如果您想了解我这里收录的文件，可以问“这份工作要点主要讲了什么”。"])

    def _asks_for_outline(self, q: Query) -> bool:
        """"这份工作要点主要讲了什么": what a document contains, asked of the document itself with no
        topic, no cited document, no item's place and not its units."""
        text = q.text
        return bool(CONTENTS_RE.search(text)) and \
            (document_named(self.kb, text) is not None or bool(DOC_SELF_RE.search(text) or EN_THIS_DOC_RE.search(text))
             or any(d.title in text for d in self.kb.documents)) \
            and not items_naming(self.kb, text) and not items_at_position(self.kb, text) \
            and not self._asks_document_units(q) \
            and not any(self.index.is_topic_word(w) for w in self._topic_words(q, outside=CONTENTS_RE))

    def document_outline(self, q: Query) -> Reply:
        doc = self._document_asked(q)
        if doc is None:
            return self.document_info(q)  # which document: the same buttons as for its facts
        return Reply("answer", outline(doc), [doc_citation(doc)], [], slots={"current_doc": doc.doc_id})

    def service_fallback(self, q: Query) -> Reply:
        note = CHINESE_NOTE if self.mostly_foreign(q.text) else ""
        return Reply("fallback", [note + "您问的是具体事项怎么办理。我解答的是政务公开工作（哪些信息公开、在哪里查、由哪个部门负责），"
                                  "具体办事流程和材料请拨打12345政务服务便民热线，或到政务服务大厅、政务服务网咨询。"
                                  "如需人工帮助，请回复“转人工”。"], buttons=[HUMAN_BUTTON])

    def fallback(self, q: Query) -> Reply:
        if q.doc_scope:  # "这个文件里关于预算的内容", and the document has none
            doc = self.kb.document(q.doc_scope)
            text = f"在《{doc.title}》中没有找到与您的问题相关的内容。"
            elsewhere = [h for h in self.index.search(q.scoring or q.text, q.tokens, q.departments)
                         if h.doc != doc.doc_id and h.coverage >= ANSWER_COVERAGE][:2]
            if elsewhere:
                reply = self.clarify(elsewhere, q, name_docs=True)
                reply.texts = [text + "其他文件中有相关内容，您可以点击查看。"]
                return reply
            return Reply("fallback", [text + "您可以换个说法再问。" + HANDOFF_HINT], buttons=[HUMAN_BUTTON],
                         slots={"current_doc": doc.doc_id})
        return Reply("fallback", ["抱歉，我在政务公开政策文件中没有找到与您的问题相关的内容。"
                                  "您可以换个说法再问，比如说明具体的事项或部门。" + HANDOFF_HINT],
                     buttons=[HUMAN_BUTTON])
