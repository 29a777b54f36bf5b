"""The ``zh-cer`` normaliser: one text normalisation, applied identically to
reference and hypothesis, named and versioned.

Punctuation left in model output, traditional characters, special tokens,
full-width forms, casing and spaces each move a Chinese CER by points; a number
is only comparable with another produced by the same normalisation, so every
report prints :attr:`Normaliser.label` (``"zh-cer v2"``, plus ``+numbers``,
``+fillers``, ``+mixed`` for the options in use). The version moves whenever some
input normalises differently: v2 strips malformed special tokens (``<|a|b|>``)
whole and deletes combining marks left with no character to sit on, where v1 left
a letter or a mark behind to be scored, so a v1 and a v2 CER are not comparable.

Default pipeline (``NormaliserOptions()``), in this order
------------------------------------------------------------
1. **Special tokens and tags** are replaced by a separator: ``<|...|>``
   (``<|zh|>``, ``<|endoftext|>``, ``<|0.00|>``, ``<|im_end|>`` ...), whole even
   when malformed with ``|`` inside (``<|a|b|>``: a letter of ``b|>`` left behind
   would be scored as a character); ASCII
   markup-style tags ``<unk>``, ``<s>``, ``</s>``, ``<SIL>``, ``<NOISE>``,
   ``<br/>``; bracketed ASCII event tags ``[NOISE]``, ``[laughter]``,
   ``[VOCALIZED-NOISE]``, ``[MUSIC]`` and MagicData's ``[+]`` / ``[*]``.
   Bracketed *Chinese* text (``[音乐]``, ``【新闻】``) is not removed: it is
   what a model wrote (often a hallucination), so it is scored. Only ASCII
   ``<>``/``[]`` count (full-width ``＜｜zh｜＞`` is just punctuation and letters).
2. **NFKC** (full width -> half width, compatibility ideographs -> unified ones,
   ``①`` -> ``1``, ``ﬁ`` -> ``fi`` ...).
3. **Casefold** (``str.casefold``: ``IPHONE`` == ``iPhone``; ``ß`` -> ``ss``).
4. **Traditional -> simplified, character by character**, with the
   ``TSCharacters`` table of OpenCC (the official ``opencc`` PyPI package, the
   same table its ``t2s`` config ends with; the "tofu risk" extension table is
   left out so that no character turns into one fonts lack). Phrase-level
   conversion is deliberately *not* used: it depends on the neighbouring
   characters, so a recognition error next to a character could change how that
   character converts and count twice. Character level is context-free:
   ``這個們說`` -> ``这个们说`` wherever they stand. The table is closed under
   itself (a chain such as ``薴`` -> ``苧`` -> ``苎`` maps straight to the end).
   [numbers option: Arabic numerals -> Chinese numerals here, see below]
5. **Punctuation, symbols and separators** (Unicode categories P*, S*, Z*,
   and control characters Cc) become separators; ``%`` is kept. Invisible
   format characters (Cf: zero-width space, BOM, ZWJ ...), lone surrogates
   (Cs), enclosing marks (Me: keycaps) and variation selectors are deleted.
   ASCII ``'`` and ``’`` are deleted rather than separating (``don't`` ->
   ``dont`` stays one word in mixed mode). A combining mark (Mn, Mc) left with
   no character to sit on -- at the start, or right after a separator (``，\u0301好``,
   ``好。\u0300``) -- is deleted too: it is no character of its own, and once the
   separators went it would either count as one or land on an unrelated letter.
   A mark on a character (``cafe\u0301``, ``好\u0301``) is kept.
   [fillers option: fillers and erhua are removed right after this step, see below]
6. **All whitespace is removed** (characters mode has no whitespace at all).
7. Steps 2-6 are re-applied until nothing changes, for the rare strings where
   casefold, NFKC and deleting a character between a letter and its combining
   mark interact: ``normalise(normalise(x)) == normalise(x)`` for every ``x``.

Plain simplified Chinese, ASCII and Chinese punctuation take a fast path that is
equivalent (one ``str.translate`` built from the steps above); everything else
runs the steps in the order listed. :meth:`Normaliser.normalise_many` (what
scoring uses) takes the same fast path for a whole batch at once through a numpy
code point table, because a test set of 10^5 utterances is 2x10^5 strings and a
per-string Python step was most of ``kimi-tui score``'s time; strings the table
cannot settle go one by one, so the result is the same string for string.

Decimal points and thousands separators are punctuation: without ``numbers``,
``3.5%`` -> ``35%`` and ``1,000`` -> ``1000``. Use the numbers option when
references and hypotheses write numbers differently.

Options (all off by default; the label records them)
----------------------------------------------------
``numbers``: Arabic numerals -> Chinese numerals, the direction SpeechIO's
leaderboard normaliser (``textnorm_zh.py``) takes, on the text after NFKC,
casefold and t2s and before punctuation is removed (so ``.``, ``%``, ``:`` and
``/`` are still visible). Only ASCII digits 0-9 are converted (full-width ones
become ASCII in NFKC); ``〇`` becomes ``零``. Canonical forms:

* percent: ``3.5%`` -> ``百分之三点五``, ``200%`` -> ``百分之两百``;
* decimal: ``3.14`` -> ``三点一四``, ``0.5`` -> ``零点五`` (integer part as a
  cardinal, decimals digit by digit);
* thousands groups: ``1,000`` -> ``一千``; a full-width ``，`` is never a
  thousands separator (``100，200`` is a list: ``一百两百``);
* fraction: ``1/2`` -> ``二分之一`` (not when part of ``a/b/c`` such as dates);
* clock time: ``10:30`` -> ``十点三十分``, ``9:05`` -> ``九点零五分``,
  ``10:00`` -> ``十点``;
* digit by digit (``零一二三四五六七八九``, never ``幺``/``〇``): a run with a
  leading zero (``007``, ``0571``); four digits before ``年`` (``2025年`` ->
  ``二零二五年``, so it equals ``二零二五年`` and ``二〇二五年``); two digits
  starting 0, 8 or 9 before ``年`` but not ``年代`` (``98年`` -> ``九八年``, as
  SpeechIO); any run of four or more digits *not* followed by a measure word or
  unit and not preceded by ``第`` (codes, phone and room numbers: ``10086`` ->
  ``一零零八六``);
* otherwise a cardinal (``cn2an.an2cn``, ``low`` mode): ``15`` -> ``十五``,
  ``110`` -> ``一百一十``, ``3000万`` -> ``三千万``, ``1001个`` ->
  ``一千零一个``, ``第1000`` -> ``第一千``; like SpeechIO, ``二`` before
  ``百/千/万/亿`` is written ``两`` when it leads or follows one of those units
  (``200`` -> ``两百``, ``22000元`` -> ``两万两千元``, ``12`` -> ``十二``).
  Cardinals longer than 16 digits are read digit by digit.

Chinese numerals already in the text are left alone (``二百`` stays ``二百``,
``两`` stays ``两``): the option makes Arabic numerals comparable with the usual
spoken-form references, it does not rewrite references.

``fillers``: after punctuation became separators, in this order:

* ``呃`` ``嗯`` ``呣`` (pure hesitation sounds) are deleted wherever they stand;
* erhua: ``儿`` directly after a Chinese character (separators in between are
  ignored) is deleted -- ``那儿`` -> ``那``, ``一点儿`` -> ``一点`` -- except in
  the words of :data:`ERHUA_KEEP` (SpeechIO's list plus more: ``儿子``,
  ``女儿``, ``儿童``, ``婴儿``, ``幼儿园``, ``儿时`` ...). A ``儿`` at the start
  or after Latin letters/digits is kept;
* ``啊 哦 喔 噢 额 唔 哎 诶 欸 唉`` are deleted only as *standalone*
  interjections: a run of them with a separator (punctuation, space, start or
  end of text) on both sides. ``呃，好啊。`` -> ``好啊`` (the particle stays),
  ``额，金额`` -> ``金额``. SpeechIO removes every ``啊``; that deletes sentence
  particles, so this is more conservative.

``mixed``: :meth:`Normaliser.tokens` returns code-switching tokens instead of
characters: each CJK character (ideographs, kana, ``〇``) one token, each run of
other letters (a Latin word) one token, each digit run one token, ``%`` one
token. Punctuation, tags and spaces separate words before they are dropped;
letters and digits always split (``iphone15`` -> ``iphone``, ``15``). The
normalised *string* is the same as without ``mixed``, and
``"".join(tokens(x)) == normaliser(x)`` always holds.

Libraries: ``opencc`` (>= 1.4, the official OpenCC binding, works offline:
dictionaries ship in the wheel) and, for the numbers option only, ``cn2an``.
Neither is imported until first use; the first call builds the translate tables
(~0.25 s once per process), later calls are pure ``str.translate``/``re`` (no
per-string OpenCC call, so there is nothing to batch). Which characters count as
punctuation/symbols comes from the running Python's ``unicodedata``; the t2s table
from the installed OpenCC's dictionaries (pinned in constraints.txt).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

NORMALISER_NAME = "zh-cer"
NORMALISER_VERSION = 2

# --------------------------------------------------------------------------- patterns

# Step 1: special tokens and tags (ASCII brackets only; see module docstring).
_SPECIAL = re.compile(
    # <|zh|> <|endoftext|> <|0.00|>, and malformed ones with "|" inside (<|a|b|>) as one token, so that
    # no "b" of "b|>" is left to score. "<" and ">" cannot occur inside: <|zh|><|en|> are two tokens.
    # No pattern may match a newline: normalise_many joins its strings with "\n".
    r"<\|[^<>\n]{0,100}\|>"
    r"|</?[A-Za-z][A-Za-z0-9_.:-]{0,40}/?>"  # <unk> </s> <SIL> <br/>
    r"|\[(?:[A-Za-z][A-Za-z0-9_-]{0,40}|[*+])\]"  # [NOISE] [laughter] [VOCALIZED-NOISE] [+] [*]
)

# Ideographs (unified, extension A-H, compatibility), radicals, kana, 〇 and iteration marks:
# one token each in mixed mode.
_CJK = (
    "\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3038-\u303b\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
)
_IDEOGRAPH = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
_TOKEN = re.compile(rf"[{_CJK}]|\d+|%|[^\s\d%{_CJK}]+")

# Output made only of these characters is already a fixed point of the pipeline (ideographs of
# planes 2-3 included: NFKC and casefold leave them alone, and t2s maps some common ones there).
_SIMPLE = re.compile(r"[ 0-9A-Za-z%\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003ffff]*")
_ASCII_DIGIT = re.compile(r"[0-9]")

# ---- numbers option
_CN_DIGITS = "零一二三四五六七八九"
_DIGIT_TABLE = str.maketrans("0123456789", _CN_DIGITS)
_NUM = re.compile(
    r"(?P<pct>[0-9]+(?:\.[0-9]+)?)[ \t]*%"
    r"|(?<![0-9/])(?P<fn>[0-9]+)/(?P<fd>[0-9]+)(?![0-9/])"
    r"|(?<![0-9:])(?P<hh>[0-9]{1,2}):(?P<mm>[0-9]{2})(?![0-9:])"
    r"|(?P<grp>[0-9]{1,3}(?:,[0-9]{3})+)(?:\.(?P<gdec>[0-9]+))?(?![0-9])"
    r"|(?P<int>[0-9]+)(?:\.(?P<dec>[0-9]+))?"
)
# A number followed by one of these (optionally after 多/余/几/来) is a quantity, read as a cardinal.
_UNITS = (
    "个人元块角毛分万亿千百次倍岁度米克吨斤两公平英里尺寸亩顷升瓶杯箱袋包份票股点例起项种批期集章节"
    "届轮名位家件条张只台辆架部本页场天周月年日时秒毫厘微兆户套间座栋头匹尾棵株粒颗枚首篇封则道门"
    "所支根片碗盘盒罐桶艘码磅像字瓦卡册幅串对双副把顶美欧港韩"
)
_QUANTITY = re.compile(rf"[多余几来]?[{_UNITS}]")
_LIANG = re.compile("(?<![^百千万亿])二(?=[百千万亿])")
# Full-width commas are list separators in Chinese, never thousands separators: keep them off ",".
_PROTECT_COMMAS = str.maketrans({"\uff0c": "\u3001", "\ufe50": "\u3001", "\ufe10": "\u3001"})

# ---- fillers option
_ALWAYS_FILLERS = "呃嗯呣"
_STANDALONE_FILLERS = "啊哦喔噢额唔哎诶欸唉"
_DELETE_ALWAYS_FILLERS = str.maketrans("", "", _ALWAYS_FILLERS)
_STANDALONE = re.compile(f"(?<![^ ])[{_STANDALONE_FILLERS}]+(?![^ ])")

#: Words whose 儿 is not erhua (kept by the fillers option). SpeechIO's list plus common others.
ERHUA_KEEP: tuple[str, ...] = (
    # SpeechIO textnorm_zh ALLOW_ER_WRD
    "儿女", "儿子", "儿孙", "女儿", "儿媳", "妻儿", "胎儿", "婴儿", "新生儿", "婴幼儿", "幼儿", "少儿",
    "小儿", "儿歌", "儿童", "儿科", "托儿所", "孤儿", "儿戏", "儿化", "台儿庄", "鹿儿岛", "正儿八经",
    "吊儿郎当", "生儿育女", "托儿带女", "养儿防老", "痴儿呆女", "佳儿佳妇", "儿怜兽扰", "儿无常父",
    "儿不嫌母丑", "儿行千里母担忧", "儿大不由爷", "苏乞儿",
    # more
    "儿时", "儿郎", "儿男", "儿媳妇", "男儿", "健儿", "宠儿", "弃儿", "患儿", "孙儿", "侄儿",
    "早产儿", "混血儿", "低能儿", "幸运儿", "弄潮儿", "孤儿院", "幼儿园", "托儿", "育儿", "儿马",
    "儿茶", "乳儿", "骄儿", "娇儿", "宁馨儿", "私生儿",
)


def _erhua_pattern() -> re.Pattern[str]:
    words = sorted(set(ERHUA_KEEP), key=len, reverse=True)
    # Separators (single spaces after collapsing) are transparent, so the decision is the same
    # before and after they are dropped.
    keep = "|".join(" ?".join(map(re.escape, w)) for w in words)
    return re.compile(f"(?P<keep>{keep})|(?:(?<=[{_IDEOGRAPH}])|(?<=[{_IDEOGRAPH}] ))儿")


_ERHUA = _erhua_pattern()


def _erhua_repl(m: re.Match[str]) -> str:
    return m.group("keep") or ""


# --------------------------------------------------------------------------- tables (lazy)


class _Tables(NamedTuple):
    main: dict[int, str]  # t2s + separators (-> " ") + deletions (-> "")
    t2s: dict[int, str]  # t2s only
    lone_marks: re.Pattern[str]  # combining marks (Mn, Mc) with no base: at the start or after a separator


_tables_lock = threading.Lock()
_tables_cache: _Tables | None = None

# Scanned for punctuation/symbols/separators/controls: everything except the blocks that hold
# only letters (CJK ideographs, Hangul syllables, planes 2-3) and private use (planes 15-16).
_SCAN = ((0x0, 0x3400), (0x4DC0, 0x4E00), (0xA000, 0xAC00), (0xD7A4, 0x20000), (0xE0000, 0xE1000))
# Ideographs offered to OpenCC: radicals, unified + extensions, compatibility ideographs.
_IDEOGRAPH_RANGES = ((0x2E80, 0x2FE0), (0x3400, 0x4DC0), (0x4E00, 0xA000), (0xF900, 0xFB00), (0x20000, 0x323B0))
_VARIATION_SELECTORS = {*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0), 0x180B, 0x180C, 0x180D, 0x180F}
_APOSTROPHES = {0x27, 0x2019}


def _is_separator(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return ch != "%" and (cat[0] in "PSZ" or cat == "Cc")


def _is_deleted(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cf", "Cs", "Me") or ord(ch) in _VARIATION_SELECTORS


def _opencc_t2s():
    try:
        import opencc
    except ImportError as e:  # pragma: no cover - declared dependency
        raise ImportError(
            "the zh-cer normaliser needs OpenCC for traditional -> simplified: pip install 'opencc>=1.4'"
        ) from e
    try:
        return opencc.OpenCC("t2s.json", include_tofu_risk_dictionaries=False)
    except TypeError:  # pragma: no cover - bindings without the tofu switch
        return opencc.OpenCC("t2s.json")


def _build_t2s() -> dict[int, str]:
    """Character-level t2s over every ideograph, closed under itself and NFKC-consistent."""
    converter = _opencc_t2s()
    sources: list[str] = []
    targets: list[str] = []
    for lo, hi in _IDEOGRAPH_RANGES:
        for cp in range(lo, hi):
            ch = chr(cp)
            nf = unicodedata.normalize("NFKC", ch)
            if len(nf) == 1:
                sources.append(ch)
                targets.append(nf)
    # One call for ~100k characters; newlines keep OpenCC's phrase table from spanning two of them.
    converted = converter.convert("\n".join(targets)).split("\n")
    if len(converted) != len(targets):  # pragma: no cover - defensive: fall back to one call each
        converted = [converter.convert(t) for t in targets]
    step = {t: c for t, c in zip(targets, converted) if c and c != t}

    def settle(text: str) -> str:
        for _ in range(8):
            nxt = "".join(step.get(ch, ch) for ch in text)
            if nxt == text:
                break
            text = nxt
        return text

    table: dict[int, str] = {}
    for src, nf in zip(sources, targets):
        out = settle(nf)
        if out != src:
            table[ord(src)] = out
    return table


def _char_class(cps: list[int]) -> str:
    """A regex character class body for sorted code points, as ranges."""
    parts = []
    start = prev = None
    for cp in [*cps, None]:
        if cp is not None and prev is not None and cp == prev + 1:
            prev = cp
            continue
        if start is not None:
            parts.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
        start = prev = cp
    return "".join(parts)


def _build_tables() -> _Tables:
    t2s = _build_t2s()
    main: dict[int, str] = {}
    marks: list[int] = []
    for lo, hi in _SCAN:
        for cp in range(lo, hi):
            ch = chr(cp)
            if unicodedata.category(ch) in ("Mn", "Mc") and not _is_deleted(ch):
                marks.append(cp)
            if cp in _APOSTROPHES:
                main[cp] = ""
            elif _is_deleted(ch):
                main[cp] = ""
            elif _is_separator(ch):
                nf = unicodedata.normalize("NFKC", ch)
                # Safe to drop before NFKC only if NFKC would leave nothing that is kept
                # ("％" -> "%" is kept, "¨" -> " ̈" leaves a combining mark): others take the slow path.
                if all(_is_separator(c) or _is_deleted(c) for c in nf) and not any(ord(c) in _APOSTROPHES for c in nf):
                    main[cp] = " "
    main.update(t2s)
    # Separators are single spaces by then (or the start of the text); a run of marks there has
    # nothing to combine with and would otherwise count as characters once the spaces go.
    lone_marks = re.compile(f"(?<![^ ])[{_char_class(marks)}]+")
    return _Tables(main=main, t2s=t2s, lone_marks=lone_marks)


def _tables() -> _Tables:
    global _tables_cache
    tables = _tables_cache
    if tables is None:
        with _tables_lock:
            if _tables_cache is None:
                _tables_cache = _build_tables()
            tables = _tables_cache
    return tables


# --------------------------------------------------------------------------- numbers


_an2cn = None


def _cardinal(digits: str) -> str:
    global _an2cn
    digits = digits.lstrip("0") or "0"
    if len(digits) > 16:
        return digits.translate(_DIGIT_TABLE)
    if _an2cn is None:
        from cn2an import an2cn

        _an2cn = an2cn
    try:
        out = _an2cn(digits, "low")
    except Exception:  # pragma: no cover - cn2an refuses: read it digit by digit
        return digits.translate(_DIGIT_TABLE)
    return _LIANG.sub("两", out)


def _integer(digits: str, before: str, after: str) -> str:
    """An integer run without decimals, by the rules in the module docstring."""
    if len(digits) > 1 and digits[0] == "0":
        return digits.translate(_DIGIT_TABLE)
    if after.startswith("年"):
        if len(digits) == 4 or (len(digits) == 2 and digits[0] in "89" and not after.startswith("年代")):
            return digits.translate(_DIGIT_TABLE)
    if len(digits) >= 4 and before != "第" and not _QUANTITY.match(after):
        return digits.translate(_DIGIT_TABLE)
    return _cardinal(digits)


def _number_repl(m: re.Match[str]) -> str:
    text = m.string
    if m.group("pct") is not None:
        whole, _, dec = m.group("pct").partition(".")
        return "百分之" + _cardinal(whole) + ("点" + dec.translate(_DIGIT_TABLE) if dec else "")
    if m.group("fn") is not None:
        return _cardinal(m.group("fd")) + "分之" + _cardinal(m.group("fn"))
    if m.group("hh") is not None:
        minutes = m.group("mm")
        hour = _cardinal(m.group("hh")) + "点"
        if minutes == "00":
            return hour
        return hour + (("零" + _cardinal(minutes)) if minutes[0] == "0" else _cardinal(minutes)) + "分"
    if m.group("grp") is not None:
        dec = m.group("gdec")
        return _cardinal(m.group("grp").replace(",", "")) + ("点" + dec.translate(_DIGIT_TABLE) if dec else "")
    whole, dec = m.group("int"), m.group("dec")
    if dec is not None:
        head = whole.translate(_DIGIT_TABLE) if len(whole) > 1 and whole[0] == "0" else _cardinal(whole)
        return head + "点" + dec.translate(_DIGIT_TABLE)
    start, end = m.span()
    return _integer(whole, text[start - 1 : start], text[end : end + 3])


def _convert_numbers(text: str) -> str:
    if "〇" in text:
        text = text.replace("〇", "零")
    if _ASCII_DIGIT.search(text) is None:
        return text
    return _NUM.sub(_number_repl, text)


# --------------------------------------------------------------------------- fillers


def _remove_fillers(text: str) -> str:
    text = " ".join(text.translate(_DELETE_ALWAYS_FILLERS).split())
    if "儿" in text:
        text = _ERHUA.sub(_erhua_repl, text)
    return _STANDALONE.sub("", text)


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class NormaliserOptions:
    numbers: bool = False  # Arabic numerals -> Chinese numerals (SpeechIO's direction; rules in the module docstring)
    fillers: bool = False  # remove 呃/嗯/呣, standalone 啊/哦/额..., and erhua 儿 (list-based, never 儿子/女儿/儿童)
    mixed: bool = False  # tokens(): CJK characters + Latin words / digit runs (code-switching), not characters

    def label(self) -> str:
        """What every report prints, e.g. ``"zh-cer v2"`` or ``"zh-cer v2 +numbers +fillers +mixed"``."""
        flags = [name for name in ("numbers", "fillers", "mixed") if getattr(self, name)]
        return " ".join([f"{NORMALISER_NAME} v{NORMALISER_VERSION}", *(f"+{f}" for f in flags)])


class Normaliser:
    """The zh-cer normaliser with its options; call it on a string, or use :meth:`tokens`."""

    def __init__(self, options: NormaliserOptions = NormaliserOptions()) -> None:
        self.options = options
        self.name = NORMALISER_NAME
        self.version = NORMALISER_VERSION
        self.label = options.label()

    def __repr__(self) -> str:
        return f"Normaliser({self.label!r})"

    # One pass of steps 1-5 (+ options), separators kept as spaces. Returns (text, is_fixed_point).
    def _spaced(self, text: str) -> tuple[str, bool]:
        if not text:
            return "", True
        if not isinstance(text, str):
            raise TypeError(f"normalise expects str, got {type(text).__name__}")
        opts = self.options
        if "<" in text or "[" in text:
            text = _SPECIAL.sub(" ", text)
        tables = _tables_cache or _tables()
        out = text.translate(tables.main)
        if _SIMPLE.fullmatch(out) is not None and not (opts.numbers and _ASCII_DIGIT.search(out)):
            # Fast path: only ASCII letters/digits/%, spaces and ideographs are left, all of which
            # NFKC and t2s leave alone; casefold of ASCII is lower().
            out = out.lower()
            simple = True
        else:
            out = self._slow(text, tables)
            simple = False
        if opts.fillers:
            out = _remove_fillers(out)
            if not simple:  # a mark after a filler that went is as alone as one after punctuation
                out = tables.lone_marks.sub("", out)
        return out, simple

    def _slow(self, text: str, tables: _Tables) -> str:
        opts = self.options
        if opts.numbers:
            text = text.translate(_PROTECT_COMMAS)
        out = unicodedata.normalize("NFKC", text).casefold()
        if opts.numbers:
            out = _convert_numbers(out.translate(tables.t2s))
        lone_marks = tables.lone_marks.sub
        out = lone_marks("", out.translate(tables.main))
        for _ in range(4):  # casefold can un-normalise (ǰ), deletions can make new compositions
            nxt = lone_marks("", unicodedata.normalize("NFKC", out).casefold().translate(tables.main))
            if nxt == out:
                break
            out = nxt
        return out

    def _settle(self, out: str) -> str:
        """Re-apply the whole pipeline until it changes nothing (only needed off the fast path)."""
        for _ in range(4):
            nxt = self._spaced(out)[0].replace(" ", "")
            if nxt == out:
                break
            out = nxt
        return out

    def __call__(self, text: str) -> str:
        """The normalised string: no whitespace, no punctuation or symbols except ``%``."""
        out, simple = self._spaced(text)
        out = out.replace(" ", "")
        if not simple:
            out = self._settle(out)
        return out

    def tokens(self, text: str) -> list[str]:
        """Scoring units: characters, or in mixed mode CJK characters + Latin words + digit runs.

        ``"".join(tokens(x)) == self(x)`` always.
        """
        spaced, simple = self._spaced(text)
        joined = spaced.replace(" ", "")
        if not simple:
            final = self._settle(joined)
            if final != joined:  # exotic input the settling loop changed: tokenise its result
                spaced = joined = final
        if not self.options.mixed:
            return list(joined)
        return _TOKEN.findall(spaced)

    def normalise_many(self, texts: list[str]) -> list[str]:
        """``[self(t) for t in texts]``, faster; ``None`` entries are treated as empty strings.

        A large batch is joined into one string and mapped through a code point table in numpy
        (one gather for ~10^6 characters instead of a ``str.translate`` dict lookup per character);
        strings with a character the table cannot settle (anything the one-by-one fast path would
        not take: combining marks, full-width forms, rare scripts, digits with ``numbers``) are
        normalised one by one. Same result as the loop, string for string.
        """
        opts = self.options
        if opts.fillers:
            return [self(t) if t else "" for t in texts]
        if len(texts) >= _BATCH_MIN:
            try:
                return _normalise_batch(self, texts)
            except TypeError:  # a non-str entry: the loop says which
                pass
        return self._normalise_loop(texts)

    def _normalise_loop(self, texts: list[str]) -> list[str]:
        if self.options.numbers or self.options.fillers:
            return [self(t) if t else "" for t in texts]
        tables = _tables()
        main = tables.main
        special = _SPECIAL.sub
        simple = _SIMPLE.fullmatch
        call = self.__call__
        out: list[str] = []
        append = out.append
        for text in texts:
            if not text:
                append("")
                continue
            t = special(" ", text) if ("<" in text or "[" in text) else text
            t = t.translate(main)
            if simple(t) is not None:
                append(t.replace(" ", "").lower())
            else:
                append(call(text))
        return out


# --------------------------------------------------------------------------- batches (numpy)

_BATCH_MIN = 512  # strings; below this numpy's import and set-up cost more than they save
_BATCH_CHUNK = 65_536  # strings per joined chunk: bounds the arrays to a few tens of MB
_DROP = 0xFFFFFFFF  # separator or deleted character
_OFF = 0xFFFFFFFE  # leaves the fast path: the string is normalised one by one
_luts: dict[bool, object] = {}


def _lut(numbers: bool):
    """Code point -> what the one-by-one fast path makes of it (``.lower()`` included), or _DROP / _OFF."""
    lut = _luts.get(numbers)
    if lut is not None:
        return lut
    import numpy as np

    main = _tables().main
    lut = np.full(0x110000, _OFF, dtype=np.uint32)
    for lo, hi in ((0x30, 0x3A), (0x61, 0x7B), (0x3400, 0x4DC0), (0x4E00, 0xA000), (0x20000, 0x40000)):  # _SIMPLE
        lut[lo:hi] = np.arange(lo, hi, dtype=np.uint32)
    lut[0x41:0x5B] = np.arange(0x61, 0x7B, dtype=np.uint32)
    lut[ord("%")] = ord("%")
    for cp, image in main.items():
        if image in ("", " "):
            lut[cp] = _DROP
        elif len(image) == 1 and _SIMPLE.fullmatch(image):
            lut[cp] = ord(image.lower())
        else:
            lut[cp] = _OFF
    if numbers:  # digits go through the number rules
        lut[0x30:0x3A] = _OFF
    lut[0x0A] = 0x0A  # the joiner between strings (a string holding one is done one by one)
    _luts[numbers] = lut  # a racing thread builds the same table: no lock needed
    return lut


def _normalise_batch(normaliser: Normaliser, texts: list[str]) -> list[str]:
    if normaliser.options.fillers:  # needs the spaces between words: one by one
        return [normaliser(t) if t else "" for t in texts]
    import numpy as np

    lut = _lut(normaliser.options.numbers)
    out: list[str] = []
    for start in range(0, len(texts), _BATCH_CHUNK):
        chunk = texts[start : start + _BATCH_CHUNK]
        one_by_one: list[int] = []
        try:
            joined = "\n".join(chunk)
        except TypeError:
            if any(t is not None and not isinstance(t, str) for t in chunk):
                raise
            chunk = [t or "" for t in chunk]
            joined = "\n".join(chunk)
        if joined.count("\n") != len(chunk) - 1:
            one_by_one = [k for k, t in enumerate(chunk) if "\n" in t]
            joined = "\n".join("" if "\n" in t else t for t in chunk)
        if "<" in joined or "[" in joined:
            joined = _SPECIAL.sub(" ", joined)  # never spans a "\n"
        codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        mapped = lut.take(codes)  # take and compress: several times faster than [] when every other
        off = np.flatnonzero(mapped == _OFF)  # character is a space to drop (mispredicted branches)
        if off.size:
            newlines = np.flatnonzero(codes == 0x0A)
            one_by_one.extend(np.unique(np.searchsorted(newlines, off)).tolist())
        kept = np.compress(mapped < _OFF, mapped)
        results = kept.tobytes().decode("utf-32-le", "surrogatepass").split("\n")
        for k in one_by_one:
            results[k] = normaliser(chunk[k]) if chunk[k] else ""
        out.extend(results)
    return out


_DEFAULT = Normaliser()


def normalise(text: str) -> str:
    """The default zh-cer normalisation (no options)."""
    return _DEFAULT(text)
