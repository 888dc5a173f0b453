"""Language rules for text the engine writes: stop-words, phrase breaks, title casing.

Small, hand-kept tables for the languages the offline engine plans and speaks
(en, fr, es, de, it, pt, pl, ru, el); any other code falls back to English
rules.  They serve three purposes:

* `stop_words(lang)`: words that carry no topic (articles, prepositions,
  conjunctions, pronouns, common auxiliaries), for picking keywords.
* `phrase_breaks(lang)`: words a phrase may start with (prepositions,
  conjunctions, relative pronouns), so a long title is shortened *before* one
  of them rather than in the middle of a phrase.
* `title_case(text, lang)`: English headline case (small words lower-case);
  every other language uses sentence case, where only the first letter is
  raised and nothing is lowered, so German nouns, names and acronyms keep
  the capitals the source gave them.
"""

from __future__ import annotations

import re

LANGUAGES = ("en", "fr", "es", "de", "it", "pt", "pl", "ru", "el")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words a phrase may start with: prepositions, conjunctions, relative pronouns.
_BREAKS: dict[str, frozenset[str]] = {
    "en": _words(
        """about above across after against along among around as at because before
        behind below beneath beside between beyond but by during except for from
        if in inside into like near of off on onto or out outside over past since
        so than that through throughout till to toward towards under unless until
        up upon versus via when where whereas which while who whom whose with
        within without and nor yet"""
    ),
    "fr": _words(
        """à au aux avec chez contre dans de des du en entre et jusqu lorsque mais
        ni ou où par parce pendant pour puisque quand que qui quoi sans selon sous
        sur vers car donc depuis après avant malgré parmi"""
    ),
    "es": _words(
        """a al ante bajo con contra de del desde durante e en entre hacia hasta
        mediante ni o para pero por porque que quien quienes sin sino sobre tras
        y u cuando donde mientras aunque según"""
    ),
    "de": _words(
        """als am an auf aus bei bis damit dass durch für gegen hinter im in mit
        nach neben ob oder ohne seit sondern über um und unter von vor während
        weil wenn wie wo zu zum zur zwischen aber denn doch sowie"""
    ),
    "it": _words(
        """a ad al alla alle agli ai con da dal dalla dei degli delle di del della
        e ed fra in nel nella nei negli nelle ma o oppure per perché quando se
        senza sopra sotto su sul sulla tra che cui mentre dove come verso"""
    ),
    "pt": _words(
        """a ao aos até com contra de da das do dos desde durante e em entre mas
        nem no na nos nas ou para pela pelo pelas pelos per porque que quando
        sem sob sobre enquanto onde como após"""
    ),
    "pl": _words(
        """a ale bez dla do i jak jeśli lub na nad o od oraz po pod podczas przed
        przez przy u w we z ze za że żeby który która które którzy gdy gdzie czy
        albo między"""
    ),
    "ru": _words(
        """а без в во для до если за и из или к как когда ко между на над но о об
        обо от перед по под при про с со у через что чтобы который которая
        которое которые где пока потому"""
    ),
    "el": _words(
        """και ή αλλά από για με σε στο στη στην στον στα στις στους προς χωρίς
        κατά μετά πριν ότι που όταν αν ενώ επειδή μέχρι ως όπως παρά μεταξύ
        ούτε"""
    ),
}

# Articles, pronouns, auxiliaries and other words with no topic of their own.
_EXTRA_STOP: dict[str, frozenset[str]] = {
    "en": _words(
        """a an the is are was were be been being it its this these those their
        there they them we our you your i me my he she his her not no do does did
        can could should would will just very more most some any all each every
        what how why"""
    ),
    "fr": _words(
        """le la les l un une d est sont était être a ont ce cet cette ces il elle
        ils elles on nous vous je tu leur leurs son sa ses mon ma mes ne pas plus
        se s y très tout tous toute toutes comment pourquoi"""
    ),
    "es": _words(
        """el la los las lo un una unos unas es son era ser fue está están este esta
        estos estas ese esa su sus mi mis tu tus se no más muy todo todos toda
        todas yo él ella ellos ellas nosotros cómo qué por qué"""
    ),
    "de": _words(
        """der die das den dem des ein eine einen einem einer eines ist sind war
        waren sein hat haben wird werden es er sie wir ihr ich du nicht kein keine
        sich auch nur sehr mehr alle dieser diese dieses wie warum was"""
    ),
    "it": _words(
        """il lo la i gli le un uno una è sono era essere ha hanno questo questa
        questi queste quello quella suo sua suoi sue non più molto tutto tutti
        si io tu lui lei noi voi loro come perché"""
    ),
    "pt": _words(
        """o os um uma uns umas é são era ser foi está estão este esta estes estas
        esse essa seu sua seus suas não mais muito todo todos toda todas se eu
        ele ela eles elas nós como por quê"""
    ),
    "pl": _words(
        """to ten ta te tego jest są był była było być nie się jego jej ich mój
        moja nasz wasz ja ty on ona my wy oni bardzo więcej wszystko wszyscy
        każdy co dlaczego tak już"""
    ),
    "ru": _words(
        """это этот эта эти тот та те то есть был была было были быть не ни он
        она оно они мы вы я ты его её их свой своя мой моя очень все всё весь
        каждый почему так уже же ли бы"""
    ),
    "el": _words(
        """ο η το οι τα του της των τον την ένας μία ένα είναι ήταν θα να δεν μην
        αυτός αυτή αυτό αυτοί αυτά εγώ εσύ εμείς εσείς τους μας σας πολύ όλα
        όλοι κάθε πώς γιατί τι"""
    ),
}

_EN_SMALL = _words(
    """a an the and but or nor for so yet as at by in of off on per to up via vs
    from into onto over with"""
)
"""Words English headline style keeps lower-case (unless first or last)."""

_WORD_CHARS = re.compile(r"\w", re.UNICODE)


def base_language(code: str) -> str:
    """``"fr-CA"`` -> ``"fr"``; a language without rules here -> ``"en"``."""
    base = code.split("-")[0].split("_")[0].lower()
    return base if base in _BREAKS else "en"


def stop_words(language: str) -> frozenset[str]:
    """Lower-case words of `language` that carry no topic."""
    lang = base_language(language)
    return _BREAKS[lang] | _EXTRA_STOP[lang]


def phrase_breaks(language: str) -> frozenset[str]:
    """Lower-case words a new phrase may start with (cut a title before them)."""
    return _BREAKS[base_language(language)]


def _core(word: str) -> str:
    """`word` lower-cased without surrounding punctuation or an elided article
    (``l'été`` -> ``l``'s phrase starts at ``l``)."""
    stripped = word.strip("\"'“”‘’«»„‚()[]{}¿¡.,;:!?…").lower()
    for apostrophe in ("'", "’"):
        if apostrophe in stripped:
            stripped = stripped.split(apostrophe)[0]
    return stripped


def _upper_first(word: str) -> str:
    """`word` with its first letter (after any opening punctuation) raised."""
    for i, ch in enumerate(word):
        if _WORD_CHARS.match(ch):
            return word[:i] + ch.upper() + word[i + 1 :]
    return word


def _keeps_case(word: str) -> bool:
    """Acronyms and mixed-case names (NASA, iPhone, McDonald) stay as written."""
    letters = [c for c in word if c.isalpha()]
    return len(letters) > 1 and any(c.isupper() for c in letters[1:])


def title_case(text: str, language: str = "en") -> str:
    """`text` cased as a title in `language`.

    English: headline case; every word capitalised except small words
    (articles, short prepositions and conjunctions) that are not first or last
    or after a colon; hyphenated parts capitalised (small ones after the first
    excepted); acronyms and mixed-case words kept.  Other languages: sentence
    case; the first letter raised and every other word left as the source
    wrote it.
    """
    words = text.split()
    if not words:
        return ""
    if base_language(language) != "en":
        return " ".join([_upper_first(words[0]), *words[1:]])
    out: list[str] = []
    for i, word in enumerate(words):
        edge = i == 0 or i == len(words) - 1 or out[-1].endswith((":", "—", "–"))
        if _keeps_case(word):
            out.append(word)
        elif not edge and _core(word) in _EN_SMALL:
            out.append(word.lower())
        else:
            parts = word.split("-")
            out.append(
                "-".join(
                    _upper_first(p) if k == 0 or _core(p) not in _EN_SMALL else p.lower()
                    for k, p in enumerate(parts)
                )
            )
    return " ".join(out)


_CLAUSE_END = re.compile(r"[,;:—–(]$|[)]$")


def shorten_title(text: str, language: str = "en", max_words: int = 10) -> str:
    """`text` (one sentence) cut to at most about `max_words` words, only at a
    phrase boundary: after a clause mark (, ; : — –), else before a conjunction
    or preposition (`phrase_breaks`), whichever leaves the longest title.
    When no boundary comes early enough the whole text is kept: the renderer
    wraps titles, so a long title costs lines, never a cut phrase.
    """
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words).rstrip(",;:—–(")
    breaks = phrase_breaks(language)
    stops = stop_words(language)
    best = 0
    for i in range(2, min(len(words), max_words + 1)):
        if _CLAUSE_END.search(words[i - 1]):
            best = i  # keep words[:i]
    if not best:
        for i in range(3, min(len(words) - 1, max_words) + 1):
            if _core(words[i]) in breaks:
                best = i
    if not best:
        return " ".join(words)
    kept = words[:best]
    # Never end on an article or a dangling small word ("… of the").
    while len(kept) > 2 and _core(kept[-1]) in stops:
        kept.pop()
    return " ".join(kept).rstrip(",;:—–(")


_THANKS = {
    "en": "Thanks for watching",
    "fr": "Merci d'avoir regardé",
    "es": "Gracias por ver",
    "de": "Danke fürs Zuschauen",
    "it": "Grazie per la visione",
    "pt": "Obrigado por assistir",
    "pl": "Dziękujemy za obejrzenie",
    "ru": "Спасибо за просмотр",
    "el": "Ευχαριστούμε που παρακολουθήσατε",
}


def thanks(language: str) -> str:
    """The end card's line in `language` (English for the languages not listed)."""
    return _THANKS.get(base_language(language), _THANKS["en"])
