"""Last NLU step: retrieval-first arbitration.

The intent classifier fits the wording of its examples; a long polite message ("你好，我想问一下
……谢谢") or a short new topic ("我想问下依申请公开") can come out as a greeting, a thank-you,
out_of_scope or nlu_fallback although the knowledge base clearly answers it. This component asks
the retrieval index (the same one the action server answers from, built from the knowledge
base) about the question without its greetings and fillers; when one item covers the question
strongly, or the question names a document an item cites, the intent becomes ``ask_policy``.

Requests for a person, complaints, feedback and ratings are never overridden; a message that
is only greetings and fillers keeps its intent, and so does a confident question to the
assistant itself ("你有哪些功能"). Short form answers (affirm/deny/cancel: "好的", "不用了") carry
no topic, so retrieval finds nothing strong in them and they keep their intent too. Questions
about other services (社保卡挂失, 天气) have no item covering them, so they stay out of scope.
"""
from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.answering.answerer import (SERVICE_RE, EN_PERSONAL_RE, EN_ANAPHORA_RE, EN_DEADLINE_RE, EN_DOC_INFO_RE, EN_RESPONSIBLE_RE, FOLLOW_UP_RE, MORE_RE,  # one definition
                                    CLARIFY_MARGIN, Answerer)
from bot.nlp.segmenter import content_words
from bot.nlu.dense_handoff import HANDOFF_P_KEY

logger = logging.getLogger(__name__)

OVERRIDABLE = {"greet", "goodbye", "thank", "bot_identity", "ask_capabilities", "out_of_scope", "nlu_fallback",
               "affirm", "deny", "cancel"}
ABOUT_THE_BOT = {"bot_identity", "ask_capabilities"}
SHORT_REPLIES = {"greet", "goodbye", "thank", "affirm", "deny", "cancel"}
ADDRESSED_TO_BOT_RE = re.compile(r"你|您|机器人|助手|\byou\b", re.I)
# An English request for a person: the classifier has almost no English examples (adding some
# pulls every English question to them), so the words decide.
_EN_PERSON = (r"(?:human(?: being)?|(?:real|actual|live) (?:person|human|agent)|person|people|agent|staff(?: member)?|"
              r"member of staff|someone|somebody|anyone|anybody|operator|officer|official|representative|employee|"
              r"supervisor|manager|boss|colleague|customer (?:service|support)|help ?desk|whoever)")
_EN_SOMEONE = (r"(?:anyone|anybody|someone|somebody|staff|one of (?:your|the) (?:staff|officers|agents|colleagues|team)|(?:a|an|your) (?:real |actual |live )?(?:human|person|staff member|"
               r"staff|colleague|officer|agent|operator|representative))")
ENGLISH_HANDOFF_RE = re.compile(
    # "Let me talk to your supervisor", "Can I chat with an actual person?", "May I speak to an officer?"
    r"\b(?:talk|speak|chat)\s+(?:to|with)\s+(?:\w+\s+){0,3}?" + _EN_PERSON + r"\b"
    # "Transfer me to an agent", "Connect me to customer service", "Put me in touch with a government employee"
    r"|\b(?:transfer|connect|put)\s+me\s+(?:through\s+)?(?:to|with)\b|\b(?:get|put)\s+me\s+in\s+touch\b"
    r"|\b(?:talk|speak|chat|transfer|connect|get me)\b.{0,30}\b(?:human|person|agent|staff|operator|representative)\b"
    # "Is there a staff member online I can chat with?", "Could a staff member get back to me?"
    r"|\b" + _EN_PERSON + r"\b.{0,30}\b(?:talk|speak|chat)\s+(?:to|with)\b"
    r"|\b" + _EN_SOMEONE + r"\b.{0,30}\b(?:call|phone|ring|contact|reach|email|get back to)\s+me\b"
    # "Please let a staff member handle this", "Have someone look at my case"
    r"|\b(?:let|have|get)\s+(?:a|an|the|some|your|one of your)?\s*(?:\w+\s+)?" + _EN_PERSON +
    r"\s+(?:to\s+)?(?:handle|deal with|take over|answer|look at|call|contact|help)\b"
    # "Please get a human to call me back", "I need a real person"
    r"|\b(?:get|find|need|want)\b\s+(?:me\s+)?(?:a|an|some)\s+(?:human|(?:real|actual|live) (?:person|agent)|operator)\b"
    # "Is anyone from the staff available?", "Is a human available to help?", "help from a person, not a bot"
    r"|\b" + _EN_SOMEONE + r"\b.{0,25}\b(?:available|online|around|on duty)\b(?:\s+to\s+(?:help|talk|chat|assist))?\W*$"
    r"|\b(?:not|instead of|rather than) (?:a|the|your|this) (?:bot|robot|machine|chatbot)\b"
    r"|\bcall ?back from\b|\b(?:hand|pass)\s+(?:me|this|it)\s+(?:over\s+|on\s+)?to\b|\bescalate\b"
    r"|\b" + _EN_SOMEONE + r"\s+on the (?:phone|line)\b"
    # "I would like to be transferred to a staff member", "Is there any way to reach a real officer?"
    r"|\btransferr(?:ed|ing)\s+to\s+(?:\w+\s+){0,3}?" + _EN_PERSON + r"\b"
    # typed in a hurry: "tranfer me to a real persn pls"
    r"|\btrans?fer\s+me\b|\b(?:real|actual|live)\s+(?:persn|prson|humn|hooman)\b|\b(?:talk|speak|chat)\s+(?:to|with)\s+(?:a\s+)?(?:humna|humman|hmuan|huamn|persn|prson)\b"
    # "Get me someone who knows …", "arrange a phone call with the officer handling my case"
    r"|\bget me (?:someone|somebody|whoever|a person|a human|an? (?:officer|agent|operator|staff member))\b"
    r"|\bput me through\b"
    r"|\b(?:arrange|schedule|book|set up)\s+(?:me\s+)?(?:a\s+)?(?:phone\s+)?(?:call|meeting|appointment)\s+with\s+"
    r"(?:a|an|the|your|one of your)?\s*(?:someone|somebody|person|officer|official|staff(?: member)?|agent|"
    r"representative|employee|supervisor|manager)\b"
    r"|\b(?:reach|contact|get hold of)\s+(?:a|an|some|one of your|your)\s+(?:real\s+|human\s+|actual\s+|live\s+)?"
    r"(?:person|human|officer|staff(?: member)?|agent|operator|representative|employee|colleague)\b"
    r"|^\W*(?:an?\s+)?(?:human|real person|live agent|agent|operator|customer service|live chat|representative|staff)\s*(?:please|pls|plz)?\s*[.!?]*$",
    re.I)
# A request, in any wording, to pass the conversation to a person ("能不能麻烦您帮我转给负责的工作人员
# 跟进一下", "能不能请一位工作人员直接跟我沟通"): the verb of the request and the person decide, not
# the long polite frame around them, which the classifier reads as a policy question.
PERSON = (r"(?:工作人员|(?<!智能)[人仁]工(?:客服|服务|坐席)?|经办人|办事员|值班员|同仁|真正的人|真的人|(?<!智能)(?<!在线)客服(?:人员|小姐姐|小哥哥|妹妹)?|真人|活人|明白人|专人|值班人员|接线员|话务员|坐席|"
          r"管事儿?的(?:人)?|负责人|同志|同事|(?:值班|上班|在班|在线|懂行|专业)的(?:人|同志)|(?:单位|部门|热线|窗口)的(?:人|同志)|"
          r"懂(?:政策|行|业务)的(?:人|同志|老师))")
HUMAN_REQUEST_RE = re.compile(
    r"(?:转给|转到|转接|转交|帮我转|转|找|寻|换|联系|接通|接|安排|预约|派|让|要|叫|喊|整)(?:一下|下)?(?:你们的?)?(?:一位|一个|个|位)?"
    r"(?:负责的?|相关的?|专门的?|真正的?)?(?:今天|现在|当班|热线|12345|窗口|大厅)?(?:的)?" + PERSON + r"(?!负责|处理(?!一下)|管理|抓|做|落实|承担|对接)" +
    # "帮我联系一下县政务公开办的工作人员": the office named between the request and the person
    r"|(?:转给|转到|转接|帮我转|联系|接通)(?:一下)?[^，。？！,.?!\s]{1,12}的" + PERSON +
    r"|请(?:一位|个|位)(?:[^，。？！,.?!\s]{1,6}的)?" + PERSON +
    # "帮我叫个值班的"
    r"|(?:叫|喊|找|转)(?:一下|下)?(?:一个|个|位)(?:值班|上班|管事|负责)的(?:人|同志)?(?:吧|吗|来|过来|。|！|$)"
    r"|" + PERSON + r".{0,6}(?:跟进|和我沟通|跟我沟通|与我沟通|直接.{0,3}沟通|联系我|给我回电|回电话|给我打电话|来处理|来回答)"
    r"|(?:和|跟|与)(?:[^，。？！,.?!\s]{1,10}的)?(?:相关|负责|相关负责|业务)?(?:的)?" + PERSON +
    r".{0,3}(?:通个?电话|通话|面谈|当面谈|当面聊|当面沟通|见个?面|直接聊|聊聊)"
    # "叫你们经理出来", "我找你们主任", "你们值班的在不在"
    r"|(?:叫|找|喊|让|请)(?:一下|下)?你们(?:的)?(?:经理|主任|领导|局长|科长|负责人|主管)"
    r"|(?:值班|上班|在班)的(?:人|同志|同事)?(?:在吗|在不在|在么|呢)"
    # "客服呢？", "人工在哪" alone; "让负责的人回个话"
    r"|^\W*(?:请问)?(?:人工(?:客服|服务|坐席)?|客服(?:人员)?|真人|工作人员|接线员|坐席)(?:呢|在哪儿?|在哪里|在吗|在不在)?\W*$"
    r"|(?:让|叫|请|喊)(?:个|一个|位|一位)?(?:负责|管事|懂行|专业|相关)的人"
    # "找主管谈", pinyin "rengong kefu"
    r"|找(?:你们)?(?:的)?(?:主管|经理|领导)(?:谈|聊|说|反映)"
    r"|\b(?:zhuan\s*)?ren\s*gong(?:\s*ke\s*fu)?\b|\bkefu\b"
    r"|" + PERSON + r".{0,6}(?:回个?话|回复我|回我一下)"
    # "我不跟机器聊", "别让机器人回答": not the assistant, a person
    r"|(?:不|别|不想|不要)(?:再)?(?:跟|和|与|让|用)?机器人?(?:聊|说|讲|对话|回答|回复)"
    # "有没有值班的同志可以回答", "你们上班的人在吗", "请热线的同志帮忙看下", "还是请人工处理吧"
    r"|" + PERSON + r"(?:在吗|在不在|在么|在线吗)"
    r"|(?:请|转|要)人工(?:处理|来|回答|解答|服务)?(?:吧|吗|。|！|$)"
    r"|(?:安排|找|请|叫)(?:一位|一个|个|位)老师.{0,3}(?:给我|帮我|来)(?:解答|回答|讲|看)"
    # 转人工 typed with a homophone (转任工, 转认工)
    r"|转(?:接)?(?:[任认仁忍][工公]|人公)"
    # "想找负责这块的科室工作人员问问", "我只想跟窗口的工作人员说几句话": the person named after what they do
    r"|(?:找|转给|转到|转接|联系|接通)(?:一下)?[^，。？！,.?!\s]{1,12}的[\u4e00-\u9fff]{0,3}" + PERSON +
    r"(?:问问|聊聊|说说|谈谈|沟通|反映|了解一下)"
    r"|(?:和|跟|与)(?:[^，。？！,.?!\s]{1,10}的)?" + PERSON + r"(?:说几句|说两句|说说|谈谈|讲讲|反映一下)"
    r"|" + PERSON + r"[^。？！.?!]{0,24}(?:能|可以|麻烦|请)(?:帮我)?转(?:一下|过去|接)(?:吗|吧|么)?"
    # "找个负责的领导跟我讲清楚", "我要当面跟领导反映情况", "你们领导在哪"
    r"|找(?:一下|下)?(?:个|一个|位|一位)(?:负责|管事|分管)?的?领导"
    r"|(?:当面)?(?:跟|和)(?:你们)?(?:的)?领导(?:当面)?(?:反映|谈|说|聊)"
    r"|你们(?:的)?领导(?:在哪|在吗|在不在|呢)"
)
# The same with no word for staff — "有人能帮我吗", "喊个人来跟我讲", "安排人给我打个电话", "打电话给我讲讲":
# a request for a person unless the message also names a subject of the documents clearly
# ("有人能帮我查一下预算公开在哪看吗" is a question about budgets)
# "上头会不会派人来教咱", "有没有人带着培训", "有没有人盯着核查": whether someone in government
# teaches, oversees or checks — a question about the documents' work, not a request for a person now
# (it hands off only when the words name no topic: the unsure request below)
PRACTICE_ASK_RE = re.compile(r"(?:会不会|会|有没有|有无|是否|能不能|能否)(?:专门|定期|统一)?(?:派|安排|组织)?(?:个|一个)?人"
                             r"(?:来|去|在)?(?:手把手)?(?:教|带|培训|指导|管|盯|核实|核查|跟进|监督|检查|督促|讲解|解读)")
SOFT_HUMAN_REQUEST_RE = re.compile(
    r"^\W*有(?:没有)?人(?:能|可以|来)(?:帮|回答|解答)"
    r"|(?:喊|叫|找|整|派|安排)(?:一)?个?人(?:来|过来|出来|给我|跟我|和我)"
    r"|(?:打|回)(?:个|一个)?电话给我|给我(?:打|回)(?:个|一个)?电话"
    # someone who can answer: "有没有值班的同志可以回答", "请窗口的同志帮我看一下", "工作人员帮我解答一下"
    r"|(?:有没有|有无|是否有)[^，。？！,.?!\s]{0,6}" + PERSON + r"(?:在线)?(?:可以|能|来)(?:直接)?(?:跟我|和我|与我)?(?:回答|解答|帮|接待|接听|接电话|聊|说)"
    r"|请[^，。？！,.?!\s]{0,8}" + PERSON + r".{0,3}(?:帮忙看|帮我|看一?下|处理一下|回答|解答)"
    r"|" + PERSON + r".{0,4}(?:给我|帮我)(?:解答|回答|看一?下|处理)")
# A complaint names what is wrong or the act of complaining; an unsure "complain" without such a
# word ("政务服务大厅周末上班吗", "典型案例要不要上报") is a question, not a complaint for a person.
COMPLAINT_CUE_RE = re.compile(
    r"投诉|举报|检举|反映|违章|不作为|推诿|扯皮|态度|乱收费|违规|违纪|违法|吃拿卡要|拖拉|刁难|意见|不满|差评|曝光|告状|"
    r"太慢|太差|超期|不答复|不理|没人管|不管|拖着|欺负|腐败|受贿|complain|report", re.I)
ENGLISH_COMPLAINT_RE = re.compile(
    r"\b(?:file|make|lodge|submit)\s+a\s+complaint\b|\bcomplain(?:ing)?\s+about\b|"
    r"\breport\s+(?:an?|the|some)\s+(?:\w+\s+)?(?:official|officer|civil servant|employee)\b|\bbrib(?:e|es|ery|ing)\b|\bcorruption\b",
    re.I)
# English small talk, which the classifier has hardly seen ("Great, thanks!" came out as a policy
# question, "Nice to meet you" as 会议, "Bye, have a nice day" as out of scope): a message made only
# of such formulas is small talk, the last kind in it deciding (thanks, then bye → goodbye)
_EN_HELLO = (r"hi|hello|hey|howdy|greetings|good (?:morning|afternoon|evening|day)|(?:nice|pleased|glad) to meet you"
             r"|how are you(?: doing)?(?: today)?|how's it going")
_EN_THANKS = (r"(?:thanks?(?: you)?(?: (?:so|very) much| a lot| again)?|many thanks)(?: for (?:all )?(?:your|the) "
              r"(?:help|answer|reply|time|info(?:rmation)?|patience|explanation))?|much appreciated|cheers|ta"
              r"|(?:i )?appreciate (?:it|that|your help)|(?:that's |that is |it's |you're |you are )?(?:very |really |so )?"
              r"(?:helpful|useful|clear|great|perfect|awesome|cool|nice|good)|ok(?:ay)?|got it|i see|understood|noted"
              r"|(?:all ?right|alright|fine|sure|great|perfect|excellent|wonderful)")
_EN_BYE = (r"bye(?:-bye| bye)?|goodbye|good night|see you(?: later| soon| around)?|take care|that's all(?: for now)?"
           r"|have a (?:nice|good|great|lovely) (?:day|one|evening|weekend|night)")
_EN_TAIL = r"(?:\s*(?:,|\.|!|and|then|mate|sir|madam|friend|again|there|everyone|:\)|\s)+)?"
EN_SMALL_TALK_RE = re.compile(rf"^\W*(?:(?:{_EN_HELLO}|{_EN_THANKS}|{_EN_BYE})\b{_EN_TAIL})+\W*$", re.I)
EN_BYE_RE = re.compile(rf"\b(?:{_EN_BYE})\b", re.I)
EN_THANKS_RE = re.compile(r"\b(?:thanks?|cheers|appreciated?|helpful)\b", re.I)
EN_HELLO_RE = re.compile(rf"\b(?:{_EN_HELLO})\b", re.I)


# "我没有其他问题了，谢谢", "暂时没别的事了": the conversation is closing — 问题 is not a topic
CLOSING_RE = re.compile(r"^(?:好的?|嗯+|ok|行|明白了?|知道了)?[，,。！!\s]*(?:我|我们)?(?:暂时|目前|现在)?(?:就)?"
                        r"(?:没有|没|没啥|没什么|无)(?:其他|别的|其它|什么|啥)?(?:的)?(?:问题|事|事情|要问的|疑问)了?"
                        r"(?:[，,。！!\s]*(?:谢谢|多谢|感谢|辛苦|再见|拜拜)[^，,。？?]{0,6})*[。！!～~\s]*$", re.I)


def closing_small_talk(text: str) -> Optional[str]:
    """Goodbye or thanks for a message that only closes the conversation ("我没有其他问题了，谢谢")."""
    if not CLOSING_RE.match(text.strip()):
        return None
    return "goodbye" if re.search(r"再见|拜拜", text) else "thank"


# A Chinese message made only of pleasantries ("您好，很高兴能和您交流，祝您工作顺利！", "好的好的，我都
#明白了，那就先不打扰您了，再见，祝您周末愉快！"): 工作/交流/周末 in them are no topic. Each clause
# must be one of these formulas whole; the last kind decides (goodbye, then thanks, then who-are-you).
_ZH_ADDRESSEE = r"(?:您|你|你们|大家|各位|政府|政府的工作人员|工作人员)?"
_ZH_ACK_WORDS = r"好的?|嗯+|ok|行|可以|收到|懂|明白|知道|了解|清楚"  # an acknowledgement
_ZH_THANKS_CUE = r"谢|蟹蟹|射射|3q|thx"  # thanks, also as typed in a hurry (蟹蟹, 射射你, 3Q)
_ZH_PLEASANTRY = (
    r"(?:小助手|客服|工作人员)?(?:你好|您好|你们好|大家好|嗨|哈喽|早上好|上午好|中午好|下午好|晚上好|早安|晚安|在吗|在不在)"
    rf"|(?:非常|十分|太|真是|真的|再次)?(?:感谢|谢谢|多谢|谢了|谢啦|蟹蟹|射射|谢射|3q|thx){_ZH_ADDRESSEE}(?:的)?(?:刚才|刚刚|今天|一直以来|一直)?(?:这么|那么|如此|这样)?"
    r"(?:耐心|细致|热情|及时|详细|专业|认真|周到|、)*(?:的)?(?:解答|回答|回复|答复|帮助|服务|讲解|介绍|帮忙)?"
    rf"|(?:今天|一直|平时)?{_ZH_ADDRESSEE}辛苦{_ZH_ADDRESSEE}(?:一直在线为大家服务)?"
    r"|祝(?:您|你|你们|大家)?[\u4e00-\u9fff、]{0,10}?(?:顺利|愉快|快乐|健康|平安|如意|都好|好运|开心|顺心|吉祥)"
    r"|(?:工作|生活|一切|心情|周末|节日|新年|身体|万事|阖家)(?:顺利|愉快|快乐|健康|如意|都好|幸福)"
    r"|(?:很|非常|特别)?(?:高兴|荣幸)(?:能)?(?:和|跟|与|同)?(?:您|你)?(?:交流|聊天|沟通|认识|对话)?"
    r"|先?(?:(?:跟|和|向|给)(?:您|你))?(?:打个招呼|问声好|问个好|道声谢|道个谢|说声谢谢)"
    rf"|(?:{_ZH_ACK_WORDS})+"
    r"|(?:我|我们)?(?:都|已经|全)?(?:明白|知道|清楚|了解|懂)"
    r"|(?:那)?(?:就)?(?:先)?(?:不(?:再)?打扰|打扰|麻烦)(?:您|你)?"
    r"|再见|拜拜|回头见|下次再聊|下次再问"
    r"|(?:请问)?(?:您|你)是(?:谁|哪位|哪个)"
    r"|(?:您|你)?是[\u4e00-\u9fff]{0,8}?(?:助手|机器人|客服|真人)")
ZH_PLEASANTRY_RE = re.compile(rf"(?:{_ZH_PLEASANTRY})(?:了|啦|呀|啊|哈|哦|呢|吗|嘛|哟|的)*", re.I)
ZH_ACKNOWLEDGED_RE = re.compile(rf"(?:(?:我|我们)?(?:都|已经|全)?(?:{_ZH_ACK_WORDS}))+"
                                r"(?:了|啦|呀|啊|哈|哦|呢|嘛|哟|的)*", re.I)
ZH_CLAUSE_SPLIT_RE = re.compile(r"[，,。！!？?～~、；;\s]+")
# a remark about the conversation just had, done ("今天问了不少问题", "您都耐心解答了", "帮了我大忙",
# "问题都弄清楚了"): said beside thanks or a goodbye, it asks nothing
ZH_CONVERSATION_REMARK_RE = re.compile(
    r"(?:今天|刚才|这次|一下子|总算|终于)?(?:我|您|你|你们)?(?:都|也|已经|总算|终于|真|真是)?[\u4e00-\u9fff]{0,6}?"
    r"(?:问|答|解答|回答|讲|说|帮|弄|搞|听)[\u4e00-\u9fff]{0,6}?了[\u4e00-\u9fff]{0,4}?(?:了|啦|呀|啊)?"
    # "对我帮助真的很大", "收获很大": what the answers were worth to the asker
    r"|(?:这|这些|您的?解答|您的?回答)?(?:对我|对我们|对我们公司|对我们单位)?(?:的)?(?:帮助|帮了|收获|启发)(?:真的|真是|确实|实在)?"
    r"(?:很大|不小|大忙|挺大|特别大|非常大|太大)(?:了|啦|呀|啊)?")
ZH_QUESTION_CUE_RE = re.compile(r"吗|(?<![这那怎什多])么|嘛|什么|啥|哪|怎|如何|能否|是否|可否|请问|想问|咨询|多少|几|有没有|是不是|会不会|能不能|要不要")


def chinese_small_talk(text: str) -> Optional[str]:
    """Greet, thank, goodbye or bot_identity for a message made only of Chinese pleasantries."""
    clauses = [c for c in ZH_CLAUSE_SPLIT_RE.split(text or "") if c]
    if not clauses:
        return None
    pleasant = [bool(ZH_PLEASANTRY_RE.fullmatch(c)) for c in clauses]
    if not all(pleasant):
        # "非常感谢您这么耐心的解答，帮了我大忙，祝您工作顺利": thanks or a goodbye around remarks about
        # the conversation just had, none of them a question
        closing = any(p and re.search(_ZH_THANKS_CUE + r"|再见|拜拜|回头见|下次再|祝", c, re.I)
                      for p, c in zip(pleasant, clauses))
        if not closing or not pleasant[-1] or ZH_QUESTION_CUE_RE.search(text) or not all(
                p or ZH_CONVERSATION_REMARK_RE.fullmatch(c) for p, c in zip(pleasant, clauses)):
            return None
    if all(ZH_ACKNOWLEDGED_RE.fullmatch(c) for c in clauses):
        return None  # "好的", "可以", "明白了": a reply to the assistant's question, the classifier's to read
    if re.search(r"再见|拜拜|回头见|下次再|打扰", text):
        return "goodbye"
    if re.search(_ZH_THANKS_CUE + r"|麻烦", text, re.I):
        return "thank"
    if re.search(r"是(?:谁|哪位|哪个)|助手|机器人|客服|真人", text):
        return "bot_identity"
    if not re.search(r"好|嗨|哈喽|在吗|在不在|早安|晚安", text) and "辛苦" in text:
        return "thank"  # "你们辛苦了"
    return "greet"


# "请问您是哪个单位的智能客服呀": which unit's assistant this is (not which unit sees to something)
ASSISTANT_WHO_RE = re.compile(r"(?:您|你)(?:们)?(?:到底|究竟)?是(?:哪个|哪家|什么)(?:单位|部门|机构|地方|公司)(?:的|开发的|做的|派来的)"
                              r"(?:智能)?(?:客服|助手|机器人|系统|小助手)")
# "想先了解一下您是什么助手、能帮我做些什么": asked about the assistant itself, not about a policy
ASSISTANT_ASK_RE = re.compile(
    r"(?:您|你|这个助手|这个服务|这个系统|小助手)(?:到底|究竟)?是(?:个|一个)?(?:什么|啥|哪种|哪类)(?:样的?)?(?:助手|机器人|服务|系统|客服)"
    r"|(?:您|你|这个助手|小助手)(?:都|还)?(?:能|可以|会)(?:帮|替|给)?(?:我|我们|大家|人)?(?:做|干|办|解答|回答|处理)"
    r"(?:些|点|一些)?(?:什么|哪些|啥)(?:事情?|问题|服务|忙)?"
    r"|(?:能|可以|会)(?:帮|替)(?:我|我们|大家)(?:做|干|办|解答|回答|处理)?(?:些|点|一些)?(?:什么|哪些|啥)(?:事情?|问题|忙)?[？?。！!]*$")


def english_small_talk(text: str) -> Optional[str]:
    """The small-talk intent of an English message made only of greetings, thanks and goodbyes."""
    if not EN_SMALL_TALK_RE.match(text or ""):
        return None
    if EN_BYE_RE.search(text):
        return "goodbye"
    if EN_THANKS_RE.search(text):
        return "thank"
    return "greet" if EN_HELLO_RE.search(text) else "thank"  # "OK got it": acknowledged


UNSURE_COMPLAINT = 0.5
MIN_TERM_CHARS = 3       # a quoted term this long ("五统一", "文件库") names its item (六稳/空壳 are too short)
UNSURE_HUMAN = 0.5       # an unsure request for a person with no request in it ("政务公开工作人员的培训")
# thanks for the assistant's own reply ("谢谢你的解答"): small talk, whatever the reply's words
THANKS_FOR_REPLY_RE = re.compile(r"(?:你|您)(?:们)?的(?:解答|回答|回复|答复|帮助|耐心|服务|讲解|介绍)"
                                 r"|^\W*(?:thanks|thank you|thx|many thanks|cheers)\b", re.I)
# "请问这里能咨询哪些事情", "你们这个平台可以办什么": what the assistant does, not an item's 咨询
CAPABILITY_RE = re.compile(r"(?:这里(?!面)|这儿|这边|你们?|您|本?平台|助手|机器人|系统)\s*(?:都|主要|一般)?\s*(?:能|可以|可)\s*"
                           r"(?:咨询|问|办|查|回答|解答|帮)[^，,。？?]{0,4}?(?:哪些|什么|啥|哪方面|哪类)")
# An unsure greeting / thanks / goodbye that asks something ("那个表格在哪里下载") is a question the
# knowledge base does not answer: the citizen should hear "没有找到" (and reach a person after two),
# not small talk.
SMALL_TALK = {"greet", "thank", "goodbye"}
UNSURE_SMALL_TALK = 0.5
ASKS_RE = re.compile(r"哪里|哪儿|哪个|哪些|在哪|第几|怎么|怎样|如何|什么|啥|多少|几时|为什么|为何|是否|能否|能不能|可不可以|有没有|吗[?？。]?$|[?？]"
                     r"|\b(?:where|how|what|which|when|why|can i|could i)\b", re.I)
CONFIDENT = 0.8          # a classifier this sure ...
UNSURE_ABOUT_THE_BOT = 0.5  # below this, a question to the assistant must name it (你/您/助手)
STRONG_COVERAGE = 0.6    # ... is overridden by retrieval only with this much coverage
TARGET_INTENT = "ask_policy"
COMPLAINT_CHANNEL_RE = re.compile(r"(?:投诉|举报|反映)(?:的)?(?:渠道|电话|方式|途径|热线|入口|窗口)")
# a document number (…〔2021〕3号), a title in 《》 or an item's place (第五项, item 12): worth looking up
NAMES_A_PLACE_RE = re.compile(r"\d\s*号|《|第\s*[（(]?[一二三四五六七八九十两\d]{1,3}[）)]?\s*(?:项|条|点)|\bitem\s*\d|"
                              r"(?:最后|末尾|最末)\s*(?:一|那|这)?\s*(?:个)?\s*(?:项|条|点)", re.I)
NO_TOPIC = {"request_human", "complain", "affirm", "deny", "cancel", "feedback", "rate", "request_callback"}
DOUBT_HANDOFF_P = 0.25    # ... and below which an unsure classifier's request for a person is doubted
# an unsure classifier's "request for a person" that names no person, no call and no hotline
# ("宁乡市人民医院的挂号平台在哪", "帮我查一下我的公积金余额") is doubted unless the meaning is this sure
DOUBT_UNSURE_HANDOFF_P = 0.6
PERSON_CUE_RE = re.compile(PERSON + r"|人(?!民|口|大|社|才|员|事|力|均)|电话|热线|12345|客服|转|机器|自动回复|领导|主任|经理|主管|"
                           r"(?:来|找|叫|喊|派|换)(?:一)?个|懂行|管事", re.I)
HANDOFF_P = 0.9           # the meaning's probability of a request for a person that hands off (bot/nlu/dense_handoff.py)
DENSE_KEY = "dense"       # parse-data key of the items' dense scores (bot.retrieval.dense)
from bot.nlu.dense_prefetch import want  # noqa: E402  (a question to embed before parsing again)
DENSE_KEEP = 5            # how many items' scores travel to the answerer
NEAR_KEY = "near_words"   # parse-data key: {question word no item uses: [documents' words near it]}
NEAR_WORDS_MAX = 4        # at most this many of a question's words are embedded alone (~3 ms each)
DENSE_ABOVE = 0.7         # words covering this much need no vector
Z_OVER_SURE = 4.3         # a sure out_of_scope / small-talk intent yields to meaning only this clear
ARBITRATION_KEY = "arbitration"

_lock = threading.Lock()
_cached: Dict[str, Any] = {}


def _index():
    """(kb, PolicyIndex) from build/, reloaded when the build changes."""
    from bot.kb.store import kb_path, load_kb
    from bot.retrieval.search import PolicyIndex

    path = Path(kb_path())
    try:
        stamp = (path.stat().st_mtime_ns, (path.parent / "index.json").stat().st_mtime_ns)
    except OSError:
        return None
    with _lock:
        if _cached.get("stamp") != stamp:
            try:
                kb = load_kb(path)
                index = PolicyIndex.load(kb, path.parent / "index.json")
            except (ValueError, OSError):  # a publish between its renames: the old pair until both are new
                return (_cached["kb"], _cached["index"]) if "index" in _cached else None
            _cached.update(stamp=stamp, kb=kb, index=index)
        return _cached["kb"], _cached["index"]


def _dense_index():
    """The dense index of the current build (None when disabled or not built)."""
    from bot.kb.store import kb_path
    from bot.retrieval.dense import DenseIndex

    loaded = _index()
    if loaded is None:
        return None
    with _lock:
        if _cached.get("dense_stamp") != _cached.get("stamp"):
            _cached.update(dense=DenseIndex.load(loaded[0], Path(kb_path()).parent), dense_stamp=_cached.get("stamp"))
        return _cached.get("dense")


def _warm_dense() -> None:
    """Load the embedding model with the index at start-up, not at a citizen's first question."""
    try:
        from bot.retrieval.dense import embed_query

        if _dense_index() is not None:
            embed_query("政务公开")
    except Exception:
        logger.exception("dense index not warmed; answering from words alone until it loads")


def policy_strength(kb, index, text: str, tokens: List[str], raw: Optional[str] = None) -> Optional[dict]:
    """How strongly the knowledge base answers the question (``text``: its scoring text; ``raw``:
    as written, whose frame words — "in charge of" — the scoring text drops), or None."""
    from bot.answering.answerer import ANSWER_COVERAGE
    from bot.retrieval.references import items_naming

    named = items_naming(kb, text)
    if named:
        doc, item, refs = named[0]
        return {"doc": doc.doc_id, "item": item.number, "coverage": 1.0, "by": "reference"}
    words = content_words(tokens)
    if sum(len(w) for w in words) < 2:
        return None  # "你号，在吗" (你好 mistyped): one character shared with an item (50号) names no topic
    from bot.answering.answerer import EN_AND_THE_UNIT_RE, EN_DUTIES_RE, Answerer

    if Answerer.mostly_foreign(text) and (EN_DUTIES_RE.search(text) or EN_DUTIES_RE.search(raw or "")
                                          or EN_AND_THE_UNIT_RE.match(raw or text)):
        # "What does the Medical Insurance Bureau do?", "What is 市发改局 in charge of?", "And the …?"
        named_depts = index.departments_in_english(text) or kb.find_departments(raw or text)
        if named_depts:
            return {"department": named_depts[0], "coverage": 1.0, "by": "english_department"}
    departments = kb.find_departments(text)
    hits = index.search(text, tokens, departments)
    if hits and hits[0].coverage >= ANSWER_COVERAGE:
        if Answerer.mostly_foreign(text) and not index.names_a_topic_of(hits[0], index.generic_glosses(text)):
            return None  # "The government policy on pensions?": only 政府/政策 reach it, not a topic of it
        return {"doc": hits[0].doc, "item": hits[0].item, "coverage": round(hits[0].coverage, 3), "by": "retrieval"}
    return None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class RetrievalArbiter(GraphComponent):
    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "RetrievalArbiter":
        from bot.nlu.dense_prefetch import install

        install()  # questions are embedded off the event loop (bot/nlu/dense_prefetch.py)
        _warm_dense()
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            try:
                self._arbitrate(message)
            except Exception:  # arbitration is an improvement, never a reason to lose a message
                logger.exception("retrieval arbitration failed; keeping the classifier's intent")
        return messages

    @staticmethod
    def _names_a_subject(message: Message) -> bool:
        """The words of the message clearly name a subject of the documents."""
        loaded = _index()
        if loaded is None:
            return False
        scoring = message.get("text_scoring") or message.get(TEXT) or ""
        strength = policy_strength(loaded[0], loaded[1], scoring, message.get("tokens_zh") or [], message.get(TEXT))
        return bool(strength) and float(strength.get("coverage") or 0.0) >= STRONG_COVERAGE

    def _arbitrate(self, message: Message) -> None:
        intent = (message.get(INTENT) or {}).get("name")
        # the meaning's probability of a request for a person, when it was scored (bot/nlu/dense_handoff.py)
        handoff_p = None if message.get(HANDOFF_P_KEY) is None else float(message.get(HANDOFF_P_KEY))
        # whether someone in government teaches or oversees the work (read by each handoff check below)
        practice = bool(PRACTICE_ASK_RE.search(message.get(TEXT) or ""))
        if intent != "request_human" and ENGLISH_HANDOFF_RE.search(message.get(TEXT) or ""):
            self._set(message, {"name": "request_human", "confidence": 0.9},
                      {"by": "english_handoff", "overridden": intent})
            return
        if intent not in ("request_human", "complain"):
            text = message.get(TEXT) or ""
            if HUMAN_REQUEST_RE.search(text) or (SOFT_HUMAN_REQUEST_RE.search(text) and not practice
                                                 and not self._names_a_subject(message)):
                self._set(message, {"name": "request_human", "confidence": 0.9},
                          {"by": "human_request", "overridden": intent})
                return
            if ENGLISH_COMPLAINT_RE.search(text):
                self._set(message, {"name": "complain", "confidence": 0.9},
                          {"by": "english_complaint", "overridden": intent})
                return
            if handoff_p is not None and handoff_p >= HANDOFF_P and intent != "request_callback" \
                    and not SERVICE_RE.search(text) and not practice:
                # asks for a person in words no pattern has (bot/nlu/dense_handoff.py); an errand
                # ("who do I call to fix it", "help me transfer my pension") is not such a request
                self._set(message, {"name": "request_human", "confidence": handoff_p},
                          {"by": "dense_handoff", "p": handoff_p, "overridden": intent})
                return
        confidence = float((message.get(INTENT) or {}).get("confidence") or 0.0)
        text = message.get(TEXT) or ""
        small_talk = None if intent in ("request_human", "complain") else \
            closing_small_talk(text) or english_small_talk(text) or chinese_small_talk(text)
        if small_talk:  # nothing in it to look up ("Great" is not 重大, 问题 of "没有其他问题了" no topic)
            if small_talk != intent:
                self._set(message, {"name": small_talk, "confidence": 0.9},
                          {"by": "small_talk", "overridden": intent})
            return
        if intent not in ("request_human", "complain", "bot_identity") and \
                ASSISTANT_WHO_RE.search(text) and not self._names_a_subject(message):
            # "请问您是哪个单位的智能客服呀": who the assistant is, not which unit sees to something
            self._set(message, {"name": "bot_identity", "confidence": 0.9},
                      {"by": "assistant_who", "overridden": intent})
            return
        if intent not in ("request_human", "complain", "ask_capabilities", "bot_identity") and \
                ASSISTANT_ASK_RE.search(text) and not self._names_a_subject(message):
            self._set(message, {"name": "ask_capabilities", "confidence": 0.9},
                      {"by": "assistant_ask", "overridden": intent})
            return
        if intent not in ("request_human", "complain") and not (intent or "").startswith("ask_") and \
                NAMES_A_PLACE_RE.search(text):
            # "湘财税[2021]3号", "第八项讲什么": a document an item cites, or an item's place — a
            # question about that item, whatever the classifier took the bare number for ("rate")
            loaded = _index()
            if loaded is not None:
                from bot.retrieval.positions import items_at_position
                from bot.retrieval.references import items_naming

                named = items_naming(loaded[0], text) or items_at_position(loaded[0], text)
                if named:
                    self._set(message, {"name": TARGET_INTENT, "confidence": 0.9},
                              {"by": "reference", "item": named[0][1].number, "overridden": intent})
                    return
        if intent not in ("request_human", "complain") and not (intent or "").startswith("ask_"):
            # "五统一" alone (read as a rating: 五), "谢谢，文件库在哪": a term an item defines names that item
            loaded = _index()
            written = loaded[0].with_terms_as_written(text) if loaded is not None else text
            term = next((t for d, item in loaded[0].all_items() for t in item.terms
                         if len(t) >= MIN_TERM_CHARS and t in written), None) if loaded is not None else None

            if term:
                self._set(message, {"name": TARGET_INTENT, "confidence": 0.9},
                          {"by": "term", "term": term, "overridden": intent})
                return
        if intent not in ("request_human", "complain", "ask_capabilities") and CAPABILITY_RE.search(text):
            self._set(message, {"name": "ask_capabilities", "confidence": 0.9},
                      {"by": "capabilities", "overridden": intent})
            return
        if intent in OVERRIDABLE | {"ask_responsible", "ask_deadline", "ask_policy"} and Answerer.mostly_foreign(text) \
                and EN_DOC_INFO_RE.search(text):
            # "Which office issued this work plan?": about the document itself
            self._set(message, {"name": "ask_document_info", "confidence": 0.9},
                      {"by": "english_document_info", "overridden": intent})
            return
        if intent in OVERRIDABLE and Answerer.mostly_foreign(text) and \
                (EN_RESPONSIBLE_RE.search(text) or EN_DEADLINE_RE.search(text) and EN_ANAPHORA_RE.search(text)):
            # "Who is responsible for that?", "What about the deadline?": the answerer finds the
            # topic, or takes the item in context
            who = bool(EN_RESPONSIBLE_RE.search(text))
            self._set(message, {"name": "ask_responsible" if who else "ask_deadline", "confidence": 0.9},
                      {"by": "english_responsible" if who else "english_deadline", "overridden": intent})
            self._dense(message, message.get("text_scoring") or text, message.get("tokens_zh") or [])
            return
        if intent == "request_human" and handoff_p is not None and (
                handoff_p < DOUBT_HANDOFF_P or (confidence < UNSURE_HUMAN and handoff_p < DOUBT_UNSURE_HANDOFF_P
                                                and not PERSON_CUE_RE.search(text))) \
                and not HUMAN_REQUEST_RE.search(text) and not ENGLISH_HANDOFF_RE.search(text):
            # the classifier read a person in "代理人能否代替申请人提交…", "工作人员故意拖延答复，可以怎么维权":
            # the meaning is far from every request for a person, so it is a question like any other
            self._set(message, {"name": "nlu_fallback", "confidence": 1.0 - confidence},
                      {"by": "dense_doubts_handoff", "p": handoff_p, "overridden": intent})
            intent, confidence = "nlu_fallback", 1.0 - confidence
        if intent == "request_human" and not HUMAN_REQUEST_RE.search(message.get(TEXT) or "") \
                and not ENGLISH_HANDOFF_RE.search(message.get(TEXT) or "") \
                and ((confidence < UNSURE_HUMAN and (handoff_p is None or handoff_p < HANDOFF_P))  # (the meaning may confirm it)
                     or practice):
            unsure_human = True  # decided below: a strong match makes it a question
        else:
            unsure_human = False
        scoring = message.get("text_scoring")
        if scoring is None:
            scoring = message.get(TEXT) or ""
        tokens = message.get("tokens_zh") or []
        # an unsure "complaint" ("创新做法要总结上报吗": 上报) is a question when an item covers it
        if intent in SMALL_TALK and THANKS_FOR_REPLY_RE.search(message.get(TEXT) or "") and not ASKS_RE.search(scoring):
            return  # "谢谢你的解答": thanks, not a question about 解答
        if intent not in ("ask_full_text", "request_human", "complain") and MORE_RE.search(text.strip()):
            # "然后呢", "还有吗", "tell me more": more of the item in context (its full text)
            self._set(message, {"name": "ask_full_text", "confidence": 0.9}, {"by": "more", "overridden": intent})
            return
        if (intent in ABOUT_THE_BOT or intent in SHORT_REPLIES) and confidence < CONFIDENT \
                and FOLLOW_UP_RE.search(scoring) and not ADDRESSED_TO_BOT_RE.search(scoring):
            # "具体要求晓得不" read as a "no": a follow-up about the item in context
            self._set(message, {"name": "nlu_fallback", "confidence": max(confidence, 1.0 - confidence)},
                      {"by": "follow_up_not_about_the_bot", "overridden": intent})
            return  # the answerer takes the item in context
        # "…想投诉，公交公司的投诉渠道会公布出来吗": asks about the channel, complains of nothing yet
        not_a_complaint = intent == "complain" and (not COMPLAINT_CUE_RE.search(text) or (
            COMPLAINT_CHANNEL_RE.search(text) and ASKS_RE.search(scoring)))
        if intent not in OVERRIDABLE and not (intent == "complain" and confidence < UNSURE_COMPLAINT) \
                and not unsure_human and not not_a_complaint:
            if intent not in NO_TOPIC:
                self._dense(message, scoring, tokens)  # for the answerer, when the words are unsure
            return
        if intent in ABOUT_THE_BOT and ADDRESSED_TO_BOT_RE.search(scoring) and confidence >= 0.6:
            return  # "你有哪些功能": a question to the assistant, not about a policy's 功能
        if not scoring.strip():
            return
        loaded = _index()
        if loaded is None:
            return
        kb, index = loaded
        strength = policy_strength(kb, index, scoring, tokens, message.get(TEXT) or "")
        if unsure_human:  # a person is what was asked for, unless the words clearly name a topic
            # (asked whether someone teaches or oversees the work: unless no item answers it)
            from bot.answering.answerer import ANSWER_COVERAGE

            floor = ANSWER_COVERAGE if practice else STRONG_COVERAGE
            if strength and strength.get("by") in ("retrieval", "reference") and strength["coverage"] >= floor:
                self._set(message, {"name": TARGET_INTENT, "confidence": max(float(strength["coverage"]), 0.5)},
                          dict(strength, overridden=intent))
            return
        if not strength and content_words(tokens) and (intent not in SHORT_REPLIES or ASKS_RE.search(scoring)):
            # (a form answer or small talk that asks nothing — "好的知道了" — has no topic to look up)
            # no item shares enough words: does one share the meaning? ("供水供电公司" → 公共企事业单位)
            from bot.answering.answerer import EN_PUBLISHED_RE
            from bot.retrieval.dense import (ANSWER_WITHOUT_WORDS, FUSED_ASKS_PUBLISHED, FUSED_OVER_SURE, agreeing, answers_alone,
                                             confident_alone, foreign_reached, fused_best)

            foreign = Answerer.mostly_foreign(scoring)
            dense = self._dense(message, scoring, tokens, weak=True) or []
            top = (confident_alone(dense, foreign) if ANSWER_WITHOUT_WORDS else None) or answers_alone(dense, foreign)
            unsure = confidence < CONFIDENT or foreign  # (the classifier has hardly seen English)
            # the meaning's favourite among the items the words matched weakly; a Chinese question the
            # classifier calls out of scope stays so unless words say otherwise (其他服务的"政策")
            lexical = None
            if top is None and unsure and (intent != "out_of_scope" or foreign):
                lexical = index.search(scoring, tokens, kb.find_departments(scoring), top_k=len(index.items))
                top = agreeing(lexical, dense) or (foreign_reached(dense, lexical) if foreign else None)
            if top and (unsure or top.z >= Z_OVER_SURE):
                strength = {"doc": top.doc, "item": top.item, "coverage": 0.0, "by": "dense", "z": round(top.z, 2)}
            elif foreign and lexical:
                # English the dictionary reaches only in part: the words and the meaning together
                generic = index.generic_glosses(scoring)
                fused = fused_best([h for h in lexical if index.names_a_topic_of(h, generic)], dense)
                if fused is not None and (fused.score >= FUSED_OVER_SURE or (
                        fused.score >= FUSED_ASKS_PUBLISHED and EN_PUBLISHED_RE.search(scoring)
                        and not SERVICE_RE.search(scoring) and not EN_PERSONAL_RE.search(scoring))):
                    strength = {"doc": fused.doc, "item": fused.item, "coverage": round(fused.coverage, 3),
                                "by": "words_and_meaning", "z": round(fused.z, 2)}
            if not strength and foreign:
                # 'What are the "five unifications"?': a term an item defines, named in English (CC-CEDICT)
                term = next(iter(index.english_terms_named(scoring)), None)
                owner = next(((d, i) for d, i in kb.all_items() if term in i.terms), None) if term else None
                if owner:
                    strength = {"doc": owner[0].doc_id, "item": owner[1].number, "coverage": 1.0, "by": "english_term"}
        if strength and intent == "out_of_scope" and Answerer.mostly_foreign(scoring) and EN_PERSONAL_RE.search(scoring):
            strength = None  # "Will my pension payments be made public?": one's own case, whatever the words reach
        if not strength:
            if not_a_complaint:  # nothing found, nothing complained of: "没有找到" with the way to a person
                self._set(message, {"name": "nlu_fallback", "confidence": max(confidence, 1.0 - confidence)},
                          {"by": "not_a_complaint", "overridden": intent})
            elif intent in SMALL_TALK and confidence < UNSURE_SMALL_TALK and content_words(tokens) \
                    and ASKS_RE.search(scoring):
                self._set(message, {"name": "nlu_fallback", "confidence": max(confidence, 1.0 - confidence)},
                          {"by": "question_not_small_talk", "overridden": intent})
            elif intent in ABOUT_THE_BOT and confidence < CONFIDENT and not ADDRESSED_TO_BOT_RE.search(scoring) \
                    and any(len(w) >= 2 and w in index.words.idf and index.is_topic_word(w) for w in content_words(tokens)):
                # "以前的计划能在网上查吗": 能…吗 is not a question about the assistant when it names
                # a subject of the documents; the answerer asks which item or says it found none
                self._set(message, {"name": "nlu_fallback", "confidence": max(confidence, 1.0 - confidence)},
                          {"by": "topic_not_about_the_bot", "overridden": intent})
            elif intent in ABOUT_THE_BOT and confidence < UNSURE_ABOUT_THE_BOT and ASKS_RE.search(scoring) \
                    and not ADDRESSED_TO_BOT_RE.search(scoring):
                # "法规依据是第几条": a question that names no assistant, barely read as one about it
                # (the answerer: the item in context, the documents it cites, or "没有找到")
                self._set(message, {"name": "nlu_fallback", "confidence": max(confidence, 1.0 - confidence)},
                          {"by": "question_not_about_the_bot", "overridden": intent})
            return

        # (the classifier has hardly seen English: its confidence on English text says nothing)
        if confidence >= CONFIDENT and strength.get("by") == "retrieval" and strength["coverage"] < STRONG_COVERAGE \
                and not Answerer.mostly_foreign(scoring):
            return  # a sure "thank you" / "out of scope" is overridden only by a clear match

        new = {"name": TARGET_INTENT, "confidence": max(float(strength["coverage"]), 0.5)}
        self._set(message, new, dict(strength, overridden=intent))
        if strength.get("by") == "retrieval" and strength["coverage"] < DENSE_ABOVE \
                and message.get(DENSE_KEY) is None:
            self._dense(message, scoring, tokens, weak=True)  # the answerer may still have to choose

    def _dense(self, message: Message, scoring: str, tokens: List[str], weak: bool = False) -> Optional[list]:
        """The items' dense scores (bot.retrieval.dense) when the words found no sure answer,
        kept in the parse data (top few, a few hundred bytes) for the answerer."""
        from bot.retrieval.dense import DEFER, cached_vector, embed_query, enabled, query_text, worth_embedding

        if not enabled() or not content_words(tokens) or not worth_embedding(scoring):
            return None
        loaded = _index()
        if loaded is None:
            return None
        kb, index = loaded
        if not weak:
            hits = index.search(scoring, tokens, kb.find_departments(scoring))
            if hits and hits[0].coverage >= DENSE_ABOVE and (len(hits) < 2 or hits[0].rank >= CLARIFY_MARGIN * hits[1].rank):
                return None  # the words are sure and single out one item: no vector needed
        dense = _dense_index()
        if dense is None:
            return None
        vector = cached_vector(scoring)
        # the question's words no item uses (自来水, 燃气): each read by the documents' words nearest
        # in meaning (bot.retrieval.dense.DenseIndex.near_words), in a question the answerer reads them in
        from bot.answering.answerer import reads_near_words

        unknown = [w for w in dict.fromkeys(content_words(tokens)) if index.unknown_word(w)][:NEAR_WORDS_MAX] \
            if dense.word_vectors is not None and reads_near_words(message.get(TEXT) or "") else []
        vectors = {w: cached_vector(w) for w in unknown}
        if DEFER.get():  # embedded off the event loop, then parsed again
            wanted = ([query_text(scoring)] if vector is None else []) + [w for w, v in vectors.items() if v is None]
            if wanted:
                want(message, wanted)
                return None
        try:
            hits = dense.item_scores(scoring, vector)
            near = {w: found for w, v in vectors.items()
                    if (found := dense.near_words(w, v if v is not None else embed_query(w)))}
        except Exception:  # the words still answer; never lose the message over the vectors
            logger.exception("dense scores failed; answering from words alone")
            return None
        message.set(DENSE_KEY, [h.as_dict() for h in hits[:DENSE_KEEP]], add_to_output=True)
        if near:
            message.set(NEAR_KEY, near, add_to_output=True)
        return hits

    @staticmethod
    def _set(message: Message, new: dict, why: dict) -> None:
        ranking = [new] + [r for r in (message.get(INTENT_RANKING_KEY) or []) if r.get("name") != new["name"]]
        message.set(INTENT, new, add_to_output=True)
        message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        message.set(ARBITRATION_KEY, why, add_to_output=True)
