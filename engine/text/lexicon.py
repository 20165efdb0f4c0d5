"""The one abbreviation table: what each abbreviation is read as, and what its period tells the sentence splitter.

The splitter's sets (titles, words before a number, months, weekdays, ambiguous ones) are derived here; the
normaliser builds its patterns from the same table (engine.text.normalize). A new abbreviation is one entry.
"""

# Typography is this module's subject: curly quotes in its strings are meant.
# ruff: noqa: RUF001

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

OPENERS = "\"'“‘«([{"
"""Characters that open a quotation or a bracket."""


class Sense(Enum):
    """What an abbreviation's period tells the sentence splitter."""

    TITLE = "title"
    """A name or a noun follows: the period never ends a sentence ("Dr. Jekyll", "e.g. this")."""
    BEFORE_NUMBER = "before-number"
    """No sentence ends before a digit ("No. 4"); read out only before a number."""
    MONTH = "month"
    """Ends a sentence only before a sentence starter, never before a day ("Jan. 5")."""
    WEEKDAY = "weekday"
    """Ends a sentence only before a sentence starter, and only as written: "She sat. Then ..." ends one."""
    AMBIGUOUS = "ambiguous"
    """May end a sentence ("... at Acme Inc.") or sit inside one ("Acme Inc. Headquarters")."""
    PLAIN = "plain"
    """Like any word's period: a capital after "Ave." or "Rd." starts a sentence."""


@dataclass(frozen=True)
class Abbreviation:
    spoken: str
    """What the normaliser says for it."""
    sense: Sense
    """What its period tells the splitter."""
    bare: bool = False
    """Also read without its period, before a word ("Mr Smith")."""
    any_case: bool = False
    """Read in any letter case ("E.G.", "NO. 4"); otherwise only as written."""
    spaced: bool = False
    """A dotted form read with a space after its inner periods too ("e. g.", "Ph. D.")."""
    street: str | None = None
    """What it says after a street name or a number instead ("12 Elm St." is Street); read with or without its
    period, as ``spoken`` otherwise ("St. James", "St James" is Saint)."""
    after_the: bool = True
    """False: not read after "the" ("Sat." is Saturday, but "the Sun." is more likely a newspaper, or the sun)."""


# Keys are written as they appear before their period; a dotted form ("e.g") may drop its final period.
LEXICON: dict[str, Abbreviation] = {
    "Mr": Abbreviation("Mister", Sense.TITLE, bare=True),
    "Mrs": Abbreviation("Missus", Sense.TITLE, bare=True),
    "Ms": Abbreviation("Miz", Sense.TITLE, bare=True),
    "Mx": Abbreviation("Mix", Sense.TITLE),
    "Messrs": Abbreviation("Messieurs", Sense.TITLE),
    "Dr": Abbreviation("Doctor", Sense.TITLE, street="Drive"),
    "St": Abbreviation("Saint", Sense.TITLE, street="Street"),
    "Prof": Abbreviation("Professor", Sense.TITLE),
    "Rev": Abbreviation("Reverend", Sense.TITLE),
    "Fr": Abbreviation("Father", Sense.TITLE),
    "Capt": Abbreviation("Captain", Sense.TITLE),
    "Gen": Abbreviation("General", Sense.TITLE),
    "Lt": Abbreviation("Lieutenant", Sense.TITLE),
    "Col": Abbreviation("Colonel", Sense.TITLE),
    "Sgt": Abbreviation("Sergeant", Sense.TITLE),
    "Gov": Abbreviation("Governor", Sense.TITLE),
    "Sen": Abbreviation("Senator", Sense.TITLE),
    "Rep": Abbreviation("Representative", Sense.TITLE),
    "Hon": Abbreviation("Honorable", Sense.TITLE),
    "Pres": Abbreviation("President", Sense.TITLE),
    "Mt": Abbreviation("Mount", Sense.TITLE),
    "Ft": Abbreviation("Fort", Sense.TITLE),
    "vs": Abbreviation("versus", Sense.TITLE, bare=True),
    "cf": Abbreviation("compare", Sense.TITLE),
    "viz": Abbreviation("namely", Sense.TITLE),
    "approx": Abbreviation("approximately", Sense.TITLE),
    "Approx": Abbreviation("approximately", Sense.TITLE),
    "e.g": Abbreviation("for example", Sense.TITLE, any_case=True, spaced=True),
    "i.e": Abbreviation("that is", Sense.TITLE, any_case=True, spaced=True),
    "a.k.a": Abbreviation("also known as", Sense.TITLE, any_case=True),
    "no": Abbreviation("number", Sense.BEFORE_NUMBER, any_case=True),
    "nos": Abbreviation("numbers", Sense.BEFORE_NUMBER, any_case=True),
    "fig": Abbreviation("figure", Sense.BEFORE_NUMBER, any_case=True),
    "figs": Abbreviation("figures", Sense.BEFORE_NUMBER, any_case=True),
    "p": Abbreviation("page", Sense.BEFORE_NUMBER, any_case=True),
    "pp": Abbreviation("pages", Sense.BEFORE_NUMBER, any_case=True),
    "vol": Abbreviation("volume", Sense.BEFORE_NUMBER, any_case=True),
    "ch": Abbreviation("chapter", Sense.BEFORE_NUMBER, any_case=True),
    "sec": Abbreviation("section", Sense.BEFORE_NUMBER, any_case=True),
    "eq": Abbreviation("equation", Sense.BEFORE_NUMBER, any_case=True),
    "art": Abbreviation("article", Sense.BEFORE_NUMBER, any_case=True),
    "ca": Abbreviation("circa", Sense.BEFORE_NUMBER, any_case=True),
    "c": Abbreviation("circa", Sense.BEFORE_NUMBER, any_case=True),
    "Jan": Abbreviation("January", Sense.MONTH),
    "Feb": Abbreviation("February", Sense.MONTH),
    "Mar": Abbreviation("March", Sense.MONTH),
    "Apr": Abbreviation("April", Sense.MONTH),
    "Jun": Abbreviation("June", Sense.MONTH),
    "Jul": Abbreviation("July", Sense.MONTH),
    "Aug": Abbreviation("August", Sense.MONTH),
    "Sep": Abbreviation("September", Sense.MONTH),
    "Sept": Abbreviation("September", Sense.MONTH),
    "Oct": Abbreviation("October", Sense.MONTH),
    "Nov": Abbreviation("November", Sense.MONTH),
    "Dec": Abbreviation("December", Sense.MONTH),
    "Mon": Abbreviation("Monday", Sense.WEEKDAY),
    "Tue": Abbreviation("Tuesday", Sense.WEEKDAY),
    "Tues": Abbreviation("Tuesday", Sense.WEEKDAY),
    "Wed": Abbreviation("Wednesday", Sense.WEEKDAY),
    "Thu": Abbreviation("Thursday", Sense.WEEKDAY),
    "Thur": Abbreviation("Thursday", Sense.WEEKDAY),
    "Thurs": Abbreviation("Thursday", Sense.WEEKDAY),
    "Fri": Abbreviation("Friday", Sense.WEEKDAY),
    "Sat": Abbreviation("Saturday", Sense.WEEKDAY, after_the=False),
    "Sun": Abbreviation("Sunday", Sense.WEEKDAY, after_the=False),
    "Jr": Abbreviation("Junior", Sense.AMBIGUOUS),
    "Sr": Abbreviation("Senior", Sense.AMBIGUOUS),
    "Inc": Abbreviation("Incorporated", Sense.AMBIGUOUS),
    "Ltd": Abbreviation("Limited", Sense.AMBIGUOUS),
    "Co": Abbreviation("Company", Sense.AMBIGUOUS),
    "Corp": Abbreviation("Corporation", Sense.AMBIGUOUS),
    "Bros": Abbreviation("Brothers", Sense.AMBIGUOUS),
    "Dept": Abbreviation("Department", Sense.AMBIGUOUS),
    "Univ": Abbreviation("University", Sense.AMBIGUOUS),
    "Esq": Abbreviation("Esquire", Sense.AMBIGUOUS),
    "etc": Abbreviation("et cetera", Sense.AMBIGUOUS),
    "et al": Abbreviation("et al", Sense.AMBIGUOUS),
    "Ph.D": Abbreviation("PhD", Sense.AMBIGUOUS, spaced=True),
    "Ave": Abbreviation("Avenue", Sense.PLAIN),
    "Rd": Abbreviation("Road", Sense.PLAIN),
    "Blvd": Abbreviation("Boulevard", Sense.PLAIN),
    "Ctr": Abbreviation("Center", Sense.PLAIN),
}


def _tokens(sense: Sense, lower: bool = True) -> frozenset[str]:
    """The words the splitter sees before the period (the last one of "et al"), lower-cased unless case matters."""
    words = (written.split()[-1] for written, entry in LEXICON.items() if entry.sense is sense)
    return frozenset(word.lower() if lower else word for word in words)


TITLES = _tokens(Sense.TITLE)
BEFORE_NUMBER = _tokens(Sense.BEFORE_NUMBER)
MONTHS = _tokens(Sense.MONTH)
WEEKDAYS = _tokens(Sense.WEEKDAY, lower=False)
AMBIGUOUS = _tokens(Sense.AMBIGUOUS)
STREET_OR_TITLE = frozenset(written.lower() for written, entry in LEXICON.items() if entry.street)
"""Read as a street ("Elm St.") or as a title ("St. James") by ``street_sense``."""


def street_sense(before: str, next_capitalised: bool) -> bool:
    """Whether "St."/"Dr." after ``before`` reads Street/Drive ("12 Elm St.") rather than Saint/Doctor."""
    words = before.split()
    if not words or words[-1][-1] in ",;:(\"'“‘":
        return False
    previous = words[-1].strip(OPENERS)
    if any(ch.isdigit() for ch in previous):
        return True
    # A capitalised word before it names the street, unless it is just the sentence's first word ("In St. Louis").
    return previous[:1].isupper() and (len(words) > 1 or not next_capitalised)


# --- words that shape a reading (issue 16) ---------------------------------------------------------------------

NUMBERED = frozenset({
    "act", "annex", "appendix", "article", "book", "canto", "chapter", "clause", "episode", "exhibit", "figure",
    "item", "level", "line", "note", "page", "paragraph", "part", "phase", "round", "rule", "schedule", "scene",
    "section", "sections", "stage", "step", "subsection", "table", "title", "version", "volume", "war",
})  # fmt: skip
"""Words a number follows ("Chapter IV", "under section 7"). A roman numeral after one reads as a number; a number
that starts the line after one ending a line goes on with that sentence: it is not a list marker."""

HEADING_WORDS = (
    "chapter", "part", "book", "section", "prologue", "epilogue", "appendix", "introduction", "preface", "foreword",
    "afterword", "contents",
)  # fmt: skip
"""A short line that starts with one of these is a heading ("Chapter 3", "Prologue")."""

REGNAL_NAMES = frozenset({
    "Alexander", "Alfonso", "Amadeus", "Benedict", "Boniface", "Catherine", "Charles", "Christian", "Clement",
    "Constantine", "Edward", "Elizabeth", "Ferdinand", "Francis", "Frederick", "George", "Gregory", "Gustav",
    "Haakon", "Henry", "Innocent", "Isabella", "Ivan", "James", "John", "Juan", "Leo", "Leopold", "Louis", "Ludwig",
    "Mary", "Napoleon", "Nicholas", "Olaf", "Paul", "Peter", "Philip", "Pius", "Ramesses", "Richard", "Robert",
    "Rudolf", "Sixtus", "Stephen", "Urban", "Victor", "Wilhelm", "William",
})  # fmt: skip
"""Given names that monarchs, popes and heirs share. A roman numeral after one, or after a surname that follows one
or an initial, is an ordinal ("Henry VIII", "John Paul II", "James E. King III"); after any other word it is a
cardinal ("Paris VI", "World War II")."""

US_STATES = (
    "Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Delaware", "Florida",
    "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas", "Kentucky", "Louisiana", "Maine",
    "Maryland", "Massachusetts", "Michigan", "Minnesota", "Mississippi", "Missouri", "Montana", "Nebraska", "Nevada",
    "New Hampshire", "New Jersey", "New Mexico", "New York", "North Carolina", "North Dakota", "Ohio", "Oklahoma",
    "Oregon", "Pennsylvania", "Rhode Island", "South Carolina", "South Dakota", "Tennessee", "Texas", "Utah",
    "Vermont", "Virginia", "Washington", "West Virginia", "Wisconsin", "Wyoming", "D.C.", "Puerto Rico",
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA",
    "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR",
    "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "DC", "PR",
)  # fmt: skip
"""US states and their postal codes: five digits after one are a ZIP code, read digit by digit."""

SLASHED = {"and/or": "and or", "either/or": "either or", "w/o": "without", "c/o": "care of", "s/he": "she or he"}
"""Words joined by a slash that read as a phrase; two other words joined by one read with a pause ("he, him")."""

TITLE_SMALL_WORDS = frozenset({
    "a", "an", "and", "as", "at", "but", "by", "for", "from", "in", "into", "nor", "of", "on", "or", "the", "to",
    "vs", "with",
})  # fmt: skip
"""Words a title leaves in lower case ("Use with the GNU Affero General Public License")."""


def takes_number(before: str) -> bool:
    """Whether ``before`` ends with a word of ``NUMBERED`` ("... added under section"): a number on the next line
    then goes on with the sentence rather than starting a list item."""
    end = len(before.rstrip())
    start = end
    while start > 0 and before[start - 1].isalpha():
        start -= 1
    return before[start:end].lower() in NUMBERED
