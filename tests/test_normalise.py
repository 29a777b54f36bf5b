"""The zh-cer normaliser: hand-checked cases and properties (idempotence, no crash, clean output)."""

from __future__ import annotations

import importlib
import itertools
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kimi_tui.evaluate.normalise import (
    NORMALISER_NAME,
    NORMALISER_VERSION,
    Normaliser,
    NormaliserOptions,
    normalise,
)

N = importlib.import_module("kimi_tui.evaluate.normalise")  # the package re-exports a function of that name

ALL_OPTIONS = [
    NormaliserOptions(numbers=a, fillers=b, mixed=c) for a, b, c in itertools.product((False, True), repeat=3)
]
NUMBERS = Normaliser(NormaliserOptions(numbers=True))
FILLERS = Normaliser(NormaliserOptions(fillers=True))
MIXED = Normaliser(NormaliserOptions(mixed=True))


# ----------------------------------------------------------------------------- names


def test_name_version_label() -> None:
    assert (NORMALISER_NAME, NORMALISER_VERSION) == ("zh-cer", 2)
    assert NormaliserOptions().label() == "zh-cer v2"
    assert Normaliser().label == "zh-cer v2"
    assert NormaliserOptions(numbers=True, fillers=True, mixed=True).label() == "zh-cer v2 +numbers +fillers +mixed"
    assert NormaliserOptions(fillers=True).label() == "zh-cer v2 +fillers"
    n = Normaliser(NormaliserOptions(mixed=True))
    assert (n.name, n.version, n.options.mixed) == ("zh-cer", 2, True)


# ----------------------------------------------------------------------------- default pipeline


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("今天，天气很好。你去吗？去！", "今天天气很好你去吗去"),
        ("“你好”、《三体》：（上）；……——", "你好三体上"),
        ("「這個軟體很好用」", "这个软体很好用"),
        ("ＡＢＣ１２３", "abc123"),
        ("ａｂｃ　ｄ", "abcd"),  # full-width letters and ideographic space
        ("<|zh|><|transcribe|>今天<|endoftext|>", "今天"),
        ("<|startoftranscript|><|0.00|>你好<|2.40|>", "你好"),
        ("<s>你好</s><unk>", "你好"),
        ("[NOISE]你好[laughter][VOCALIZED-NOISE][+]", "你好"),
        (" 你 好\t世\n界\r\n ", "你好世界"),
        ("", ""),
        ("，。！？、“”《》", ""),
        ("!?...;:'\"", ""),
        ("50%的人", "50%的人"),
        ("５０％", "50%"),
        ("Hello, World!", "helloworld"),
        ("你\u200b好\ufeff", "你好"),  # zero-width space and BOM are deleted
        ("你好😀👍🏽", "你好"),
        ("Straße", "strasse"),
        ("café", "café"),
        ("cafe\u0301", "café"),  # combining acute composes (NFKC)
        ("㊀", "一"),
    ],
)
def test_default_cases(raw: str, expected: str) -> None:
    assert normalise(raw) == expected
    assert Normaliser()(raw) == expected


def test_latin_casing_and_spacing_do_not_matter() -> None:
    assert normalise("我用iPhone拍照") == normalise("我用 IPHONE 拍照") == "我用iphone拍照"


def test_traditional_characters_become_simplified() -> None:
    out = normalise("這個們說")
    assert out == "这个们说"
    for trad, simp in [("這", "这"), ("個", "个"), ("們", "们"), ("說", "说"), ("軟", "软"), ("體", "体"), ("後", "后")]:
        assert normalise(trad) == simp
    assert normalise("我们说这个") == "我们说这个"  # simplified stays


def test_compatibility_ideograph_and_radical_become_unified_then_simplified() -> None:
    assert normalise("\uf900") == normalise(unicodedata.normalize("NFKC", "\uf900"))
    assert normalise("\u2f00") == "一"  # KANGXI RADICAL ONE


def test_special_tokens_only_and_chinese_brackets_kept() -> None:
    assert normalise("<|endoftext|>") == ""
    assert normalise("[音乐]") == "音乐"  # a model's bracketed Chinese text is scored
    assert normalise("a<b") == "ab"


def test_decimal_point_is_punctuation_without_numbers_option() -> None:
    assert normalise("3.5%") == "35%"
    assert normalise("1,000") == "1000"


def test_non_str_input() -> None:
    assert normalise(None) == ""  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        normalise(123)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- special tokens, lone marks


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("<|a|b|>你好", "你好"),  # malformed, "|" inside: stripped whole, no "b" left
        ("你<|a|b|c|>好", "你好"),
        ("<|a|b|>", ""),
        ("好<|en|b|>", "好"),
        ("<|startoftranscript|><|zh|><|transcribe|><|notimestamps|>今天<|endoftext|>", "今天"),
        ("<|0.00|>你<|1.20|>好<|2.40|>", "你好"),
        ("<|zh|><|en|>好", "好"),  # two tokens, not one from the first "<|" to the last "|>"
        ("<||>好", "好"),
        ("<|im_start|>assistant<|im_sep|>你好<|im_end|>", "assistant你好"),
        ("<|a|b", "ab"),  # never closed: not a token, its letters are text
    ],
)
def test_special_tokens_stripped_whole(raw: str, expected: str) -> None:
    assert normalise(raw) == expected
    assert MIXED("".join(MIXED.tokens(raw))) == expected


@settings(max_examples=200, deadline=None)
@given(inner=st.text(alphabet=st.characters(blacklist_characters="<>\n"), max_size=100))
def test_any_special_token_leaves_nothing(inner: str) -> None:
    assert normalise(f"好<|{inner}|>好") == "好好"
    assert MIXED.tokens(f"好<|{inner}|>好") == ["好", "好"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("，\u0301好", "好"),  # a combining acute left alone once the comma goes
        ("好。\u0300", "好"),
        ("\u20dd好", "好"),  # enclosing circle
        ("\u0301", ""),
        ("\u0301\u0300好", "好"),
        ("a，\u0301b", "ab"),  # not moved onto the "a" across the removed comma
        ("<|zh|>\u0301你", "你"),
        ("你 \u0301 好", "你好"),
        ("¨", ""),  # NFKC: space + combining diaeresis
        ("cafe\u0301", "café"),  # a mark on its letter still composes
        ("好\u0301", "好\u0301"),  # on a character: kept (it is part of what was written)
    ],
)
def test_lone_combining_mark_is_no_character(raw: str, expected: str) -> None:
    for options in ALL_OPTIONS:
        assert Normaliser(options)(raw) == expected, options


def test_lone_mark_counts_on_neither_side() -> None:
    from kimi_tui.evaluate.metrics import score_pairs

    s_ref, s_hyp = score_pairs([("a", "你好，\u0301", "你好"), ("b", "你好", "你好。\u0300\u20dd")])
    assert (s_ref.n_ref, s_ref.errors, s_hyp.n_ref, s_hyp.errors) == (2, 0, 2, 0)


_NEAR_MARKS = [*"aeiouAE好儿呃啊1%，。 ", "\u0301", "\u0300", "\u0308", "\u20dd", "\u200b", "\ufe0f", "<|zh|>", "<|a|b|>"]
_marks = st.sampled_from(["\u0301", "\u0300", "\u20dd", "\u0308", "\u093e", "\u0301\u0300"])


@settings(max_examples=150, deadline=None)
@given(text=st.one_of(st.text(max_size=30), st.lists(st.sampled_from(_NEAR_MARKS), max_size=20).map("".join)),
       punct=st.sampled_from(list("，。！？、 !?.,;:()《》\t")), mark=_marks)
def test_mark_after_punctuation_adds_nothing(text: str, punct: str, mark: str) -> None:
    for n in (Normaliser(), MIXED, FILLERS, NUMBERS):
        assert n(text + punct + mark) == n(text + punct)
        assert n(mark + text) == n(text)


# ----------------------------------------------------------------------------- numbers option


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2025年", "二零二五年"),
        ("二零二五年", "二零二五年"),
        ("二〇二五年", "二零二五年"),
        ("３.５%", "百分之三点五"),
        ("3.5%", "百分之三点五"),
        ("百分之三点五", "百分之三点五"),
        ("50 %", "百分之五十"),
        ("200%", "百分之两百"),
        ("3.14", "三点一四"),
        ("0.5", "零点五"),
        ("1,000元", "一千元"),
        ("100，200，300", "一百两百三百"),  # full-width commas separate a list
        ("12", "十二"),
        ("15个", "十五个"),
        ("110", "一百一十"),
        ("200", "两百"),
        ("22000元", "两万两千元"),
        ("3000万", "三千万"),
        ("1001个", "一千零一个"),
        ("第1000", "第一千"),
        ("10086", "一零零八六"),  # four or more digits, no unit: digit by digit
        ("007", "零零七"),
        ("98年", "九八年"),
        ("80年代", "八十年代"),
        ("10年", "十年"),
        ("10:30", "十点三十分"),
        ("9:05", "九点零五分"),
        ("10:00", "十点"),
        ("1/2", "二分之一"),
        ("2025/1/2", "二零二五一二"),
        ("iPhone 15", "iphone十五"),
        ("12345678901234567890个", "一二三四五六七八九零一二三四五六七八九零个"),
        ("没有数字", "没有数字"),
    ],
)
def test_numbers_option(raw: str, expected: str) -> None:
    assert NUMBERS(raw) == expected


def test_numbers_make_arabic_and_spoken_forms_equal() -> None:
    assert NUMBERS("我2025年去的") == NUMBERS("我二零二五年去的")
    assert NUMBERS("涨了3.5%") == NUMBERS("涨了百分之三点五")
    assert NUMBERS("花了300元") == NUMBERS("花了三百元")
    assert normalise("2025年") != normalise("二零二五年")  # off by default


# ----------------------------------------------------------------------------- fillers option


def test_fillers_and_erhua() -> None:
    assert FILLERS("呃我想去那儿") == FILLERS("我想去那") == "我想去那"
    assert normalise("呃我想去那儿") == "呃我想去那儿"  # off by default
    assert FILLERS("我儿子和女儿在儿童乐园") == "我儿子和女儿在儿童乐园"
    assert FILLERS("婴儿在幼儿园") == "婴儿在幼儿园"
    assert FILLERS("儿时的回忆") == "儿时的回忆"
    assert FILLERS("等一会儿，一点儿") == "等一会一点"
    assert FILLERS("嗯嗯，对。") == "对"
    assert FILLERS("呃，好啊。") == "好啊"  # sentence particle kept, standalone filler removed
    assert FILLERS("啊，你好") == "你好"
    assert FILLERS("你好，啊") == "你好"
    assert FILLERS("额，金额超了") == "金额超了"
    assert FILLERS("哦，原来如此") == "原来如此"
    assert FILLERS("那个啊，我觉得") == "那个啊我觉得"
    assert FILLERS("好啊") == "好啊"


# ----------------------------------------------------------------------------- mixed tokens


def test_mixed_tokens() -> None:
    assert MIXED.tokens("我用iPhone 15拍照") == ["我", "用", "iphone", "15", "拍", "照"]
    assert MIXED.tokens("我用 IPHONE15 拍照") == ["我", "用", "iphone", "15", "拍", "照"]
    assert MIXED.tokens("Hello, world! 你好") == ["hello", "world", "你", "好"]
    assert MIXED.tokens("don't stop") == ["dont", "stop"]
    assert MIXED.tokens("50%的人") == ["50", "%", "的", "人"]
    assert MIXED.tokens("<|zh|>今天<|endoftext|>") == ["今", "天"]
    assert MIXED.tokens("") == []
    assert MIXED("我用iPhone 15拍照") == normalise("我用iPhone 15拍照") == "我用iphone15拍照"
    assert Normaliser().tokens("我用iPhone") == list("我用iphone")
    both = Normaliser(NormaliserOptions(mixed=True, numbers=True))
    assert both.tokens("买了3个iPad") == ["买", "了", "三", "个", "ipad"]


# ----------------------------------------------------------------------------- normalise_many


def test_normalise_many_matches_call() -> None:
    texts = ["「這個」，好！", "", "<|zh|>ＡＢＣ", "3.5%", "呃那儿", "cafe\u0301", "😀", "[NOISE]", None, "a<|<unk>|>b"]
    for options in ALL_OPTIONS:
        n = Normaliser(options)
        assert n.normalise_many(texts) == [n(t) if t else "" for t in texts]  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- properties

# Characters that exercise the interactions: fillers/erhua, numbers, tags, widths, marks, casing.
_INTERESTING = list(
    "呃嗯啊哦额唔儿子女童那这一点会时婴幼园個們說這乾後年代个元第万百千二两〇零"
    "0123456789０１２３.,:/%％，。！？、 \t\n<>|[]+*"
    "abcXYZｉＩİıßẞǰſ'’-_"
) + ["\u0301", "\u0308", "\u030c", "\u200b", "\ufe0f", "\u20e3", "\ud800", "😀", "<|zh|>", "<unk>", "[NOISE]", "\uf900", "ﬁ", "¨", "①", "㊀"]

_any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)  # includes lone surrogates
_tricky_text = st.lists(st.sampled_from(_INTERESTING), max_size=30).map("".join)
_texts = st.one_of(_any_text, _tricky_text, st.text(max_size=40))

_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _clean(out: str) -> bool:
    return not any(
        ch.isspace() or (unicodedata.category(ch)[0] in "PSZ" and ch != "%") or unicodedata.category(ch) in ("Cc", "Cf", "Cs")
        for ch in out
    )


@pytest.mark.parametrize("options", ALL_OPTIONS, ids=lambda o: o.label())
@_settings
@given(text=_texts)
def test_idempotent_clean_and_consistent(options: NormaliserOptions, text: str) -> None:
    n = Normaliser(options)
    once = n(text)
    assert n(once) == once
    assert _clean(once)
    assert "".join(n.tokens(text)) == once
    assert all(tok and not tok.isspace() for tok in n.tokens(text))


@_settings
@given(text=_texts)
def test_default_function_idempotent(text: str) -> None:
    assert normalise(normalise(text)) == normalise(text)


def _reference(text: str) -> str:
    """The documented default pipeline, step by step, without the fast path's shortcuts."""
    tables = N._tables()

    def once(s: str) -> str:
        s = N._SPECIAL.sub(" ", s)
        s = unicodedata.normalize("NFKC", s).casefold().translate(tables.t2s)
        kept = []
        alone = True  # no base character to combine with: the start, or just after a separator
        for ch in s:
            cat = unicodedata.category(ch)
            if cat in ("Cf", "Cs", "Me") or ord(ch) in N._VARIATION_SELECTORS or ch in "'’":
                continue  # deleted, no separator
            if ch != "%" and (cat[0] in "PSZ" or cat == "Cc"):
                alone = True
            elif cat in ("Mn", "Mc") and alone:
                continue  # a lone combining mark is no character
            else:
                kept.append(ch)
                alone = False
        return unicodedata.normalize("NFKC", "".join(kept)).casefold()

    out = once(text)
    for _ in range(8):
        nxt = once(out)
        if nxt == out:
            break
        out = nxt
    return out


@_settings
@given(text=_texts)
def test_fast_path_equals_documented_pipeline(text: str) -> None:
    assert normalise(text) == _reference(text)
