"""Masking of personal data in console exports: real ID-card check digits (incl. X), Luhn
bank cards, mobile numbers and emails, also when embedded in Chinese sentences."""
import pytest

from bot.console.masking import (classify_number, find_personal_data, id_check_digit, is_valid_id_card,
                                 luhn_ok, mask_text)


def make_id(first17: str) -> str:
    return first17 + id_check_digit(first17)


def luhn_complete(prefix: str) -> str:
    """Append the Luhn check digit to `prefix`."""
    for d in "0123456789":
        if luhn_ok(prefix + d):
            return prefix + d
    raise AssertionError("unreachable")


# A published GB 11643 example and its check digit.
KNOWN_ID = "11010519491231002X"
VALID_ID = make_id("43012419900307001")          # 湖南长沙宁乡 region code 430124
ID_WITH_X = next(make_id(f"4301241985061{n:04d}") for n in range(10000)
                 if id_check_digit(f"4301241985061{n:04d}") == "X")
BANK_CARD = luhn_complete("622202123456789012")  # 19 digits
VISA = luhn_complete("411111111111111")          # 16 digits


def test_id_check_digit_matches_the_standard():
    assert id_check_digit(KNOWN_ID[:17]) == "X"
    assert is_valid_id_card(KNOWN_ID)
    assert is_valid_id_card(KNOWN_ID.lower())
    assert ID_WITH_X.endswith("X") and is_valid_id_card(ID_WITH_X)


def test_id_card_with_wrong_check_digit_and_bad_dates():
    wrong = VALID_ID[:17] + ("1" if VALID_ID[17] != "1" else "2")
    assert not is_valid_id_card(wrong)
    # still masked: a plausible ID card (real region and birth date) with a typo is personal data
    assert classify_number(wrong) == "id_card"
    # (sequence numbers chosen so the 18 digits are not accidentally a Luhn-valid bank card)
    bad_month = next(make_id(f"43012419901307{n:03d}") for n in range(1000)
                     if not luhn_ok(make_id(f"43012419901307{n:03d}")))  # month 13
    assert not is_valid_id_card(bad_month)
    assert classify_number(bad_month) == ""
    bad_region = next(make_id(f"03012419900307{n:03d}") for n in range(1000)
                      if not luhn_ok(make_id(f"03012419900307{n:03d}")))
    assert classify_number(bad_region) == ""


def test_luhn():
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert luhn_ok(BANK_CARD) and len(BANK_CARD) == 19


@pytest.mark.parametrize("text, expected", [
    (f"我的身份证号是{VALID_ID}，请帮我查一下", f"我的身份证号是{VALID_ID[:6]}********{VALID_ID[14:]}，请帮我查一下"),
    (f"身份证{ID_WITH_X}。", f"身份证{ID_WITH_X[:6]}********{ID_WITH_X[14:]}。"),
    (f"身份证{ID_WITH_X.lower()}。", f"身份证{ID_WITH_X[:6].lower()}********{ID_WITH_X[14:].lower()}。"),
    ("电话13812345678谢谢", "电话138****5678谢谢"),
    ("电话：138 1234 5678", "电话：138 **** 5678"),
    ("电话+86 138-1234-5678", "电话+86 138-****-5678"),
    ("联系我zhang.san@example.com或者lisi@mail.gov.cn", "联系我z***@example.com或者l***@mail.gov.cn"),
    (f"卡号{BANK_CARD}转账", f"卡号{BANK_CARD[:4]}{'*' * 11}{BANK_CARD[-4:]}转账"),
    (f"卡号 {VISA[:4]} {VISA[4:8]} {VISA[8:12]} {VISA[12:]}", f"卡号 {VISA[:4]} **** **** {VISA[12:]}"),
])
def test_masks_personal_data_embedded_in_text(text, expected):
    assert mask_text(text) == expected


@pytest.mark.parametrize("text", [
    "宁政务办发〔2021〕3号",                        # document number
    "2021年8月3日印发，共有19项工作要点",
    "编号12345678901234567890123很长",              # long run: not split into an ID or a phone
    "订单号 4111111111111112",                      # 16 digits, Luhn fails
    "座机0731-87654321",                            # landline, not a mobile number
    "价格是12.5元，电话区号0731",
    "123456789012345678",                           # 18 digits but region 12.., date 5678... invalid
])
def test_leaves_other_numbers_alone(text):
    assert mask_text(text) == text


def test_several_items_in_one_message():
    text = f"我叫张三，电话13812345678，身份证{VALID_ID}，银行卡{BANK_CARD}，邮箱a.b@qq.com"
    kinds = [k for k, _, _ in find_personal_data(text)]
    assert kinds == ["mobile", "id_card", "bank_card", "email"]
    masked = mask_text(text)
    for secret in ("13812345678", VALID_ID, BANK_CARD, "a.b@qq.com"):
        assert secret not in masked
    assert masked.startswith("我叫张三，电话138****5678，身份证")


def test_mobile_not_taken_from_inside_an_id_card():
    # an ID card contains 11-digit runs that look like mobile numbers (e.g. 1990…)
    text = f"证件{make_id('13012419900307001')}"
    assert [k for k, _, _ in find_personal_data(text)] == ["id_card"]


def test_empty_and_non_text():
    assert mask_text("") == ""
    assert mask_text(None) is None
