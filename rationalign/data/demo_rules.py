"""The rule-based transformations that make the demo pairs (rationalign/data/make_demo.py).

Each rule takes one clean sentence and a seeded Random and returns the sentence corrupted for its
task (or rewritten, for paraphrase), or None when it does not apply to that sentence.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

# ---------------------------------------------------------------- string helpers

# Sentence-initial words that may be lowercased when something is put in front of them.
_DECAP = {"The", "A", "An", "My", "Our", "We", "They", "He", "She", "It", "This", "Her", "His",
          "Their", "Most", "Some", "Every", "Many", "Although", "When", "First", "Tom's"}


def _decap(s: str) -> str:
    first = s.split(" ", 1)[0]
    return s[0].lower() + s[1:] if first in _DECAP else s


def _cap(s: str) -> str:
    return s[0].upper() + s[1:] if s else s


def _words(spec: str) -> dict[str, str]:
    """'a:b c:d' -> {'a': 'b', 'c': 'd'}; '_' stands for a space inside a phrase."""
    return {k.replace("_", " "): v.replace("_", " ") for k, v in (p.split(":") for p in spec.split())}


def _replace_one(text: str, mapping: dict[str, str], rng: random.Random, *, all_: bool = False,
                 guard: str = "") -> str | None:
    """Replace one randomly chosen (or every) whole-word occurrence of a mapping key; a key also
    matches capitalised at the start of the text, and the replacement is then capitalised.
    None when no key occurs."""
    keys = sorted(mapping, key=len, reverse=True)
    pat = re.compile(r"\b(" + "|".join(re.escape(k) for k in keys) + r")\b" + guard, re.IGNORECASE)
    found = []
    for m in pat.finditer(text):
        word = m.group(1)
        if word in mapping:
            found.append((m, mapping[word]))
        elif m.start() == 0 and word[0].isupper() and (word[0].lower() + word[1:]) in mapping:
            found.append((m, _cap(mapping[word[0].lower() + word[1:]])))
    if not found:
        return None
    chosen = found if all_ else [rng.choice(found)]
    out, last = [], 0
    for m, repl in chosen:
        out += [text[last:m.start(1)], repl]
        last = m.end(1)
    return "".join(out) + text[last:]


def _prefix(text: str, options: list[str], rng: random.Random) -> str:
    return rng.choice(options) + _decap(text)


Rule = Callable[[str, random.Random], "str | None"]

# ---------------------------------------------------------------- GEC and fluency corruptions

_AGREEMENT = _words("is:are are:is was:were were:was has:have have:has")
_ARTICLE = _words("a:an an:a")
_PREPOSITION = _words("in:on on:at at:in for:to from:of with:by")
_PAST_TO_BASE = _words(
    "went:go gave:give bought:buy took:take found:find wrote:write made:make came:come left:leave "
    "saw:see ate:eat told:tell ran:run sat:sit drew:draw sent:send lent:lend rose:rise swam:swim "
    "spoke:speak sold:sell lost:lose forgot:forget fell:fall began:begin built:build heard:hear "
    "played:play walked:walk finished:finish cleaned:clean visited:visit planted:plant "
    "watched:watch waited:wait opened:open stopped:stop studied:study laughed:laugh cooked:cook "
    "called:call hired:hire fixed:fix painted:paint asked:ask answered:answer repaired:repair "
    "carried:carry landed:land kicked:kick helped:help decided:decide agreed:agree tried:try "
    "signed:sign explained:explain damaged:damage showed:show stayed:stay passed:pass washed:wash "
    "swept:sweep served:serve fed:feed arrived:arrive ended:end started:start sailed:sail "
    "barked:bark wore:wear turned:turn")
_PLURAL_TO_SINGULAR = _words(
    "children:child students:student books:book trees:tree apples:apple workers:worker "
    "friends:friend flowers:flower chairs:chair shoes:shoe coats:coat eggs:egg cows:cow "
    "nurses:nurse visitors:visitor photos:photo houses:house tickets:ticket rooms:room "
    "players:player questions:question pieces:piece boxes:box parents:parent customers:customer "
    "passengers:passenger guests:guest birds:bird kids:kid streets:street points:point "
    "countries:country products:product notes:note tires:tire vegetables:vegetable "
    "paintings:painting dishes:dish poems:poem computers:computer hills:hill emails:email "
    "beans:bean ships:ship meals:meal results:result cakes:cake ducks:duck plants:plant")
_MISSPELL = _words(
    "because:becuase library:libary friends:freinds beautiful:beatiful believe:beleive "
    "tomorrow:tommorow until:untill different:diffrent government:goverment separate:seperate "
    "restaurant:restaraunt neighbors:nieghbors grandmother:grandmoher museum:musuem "
    "afternoon:afternon answer:anwser weather:wether science:sience tired:tierd")
_FUNCTION_WORDS = ("the", "a", "to", "of", "is", "are", "was", "and")


def _drop_the(text: str, rng: random.Random) -> str | None:
    spots = [m for m in re.finditer(r" the\b", text)]
    if not spots:
        return None
    m = rng.choice(spots)
    return text[:m.start()] + text[m.end():]


def _typo_swap(text: str, rng: random.Random) -> str | None:
    """Transpose two inner letters of a word of 5+ letters: 'garden' -> 'gadren'."""
    words = text.split(" ")
    cands = [(i, j) for i, w in enumerate(words) if re.fullmatch(r"[a-z]{5,}[.,]?", w)
             for j in range(1, len(w.rstrip(".,")) - 2) if w[j] != w[j + 1]]
    if not cands:
        return None
    i, j = rng.choice(cands)
    w = words[i]
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def _letter_drop(text: str, rng: random.Random) -> str | None:
    words = text.split(" ")
    cands = [i for i, w in enumerate(words) if re.fullmatch(r"[a-z]{6,}[.,]?", w)]
    if not cands:
        return None
    i = rng.choice(cands)
    w = words[i]
    j = rng.randrange(1, len(w.rstrip(".,")) - 1)
    words[i] = w[:j] + w[j + 1:]
    return " ".join(words)


def _double_word(text: str, rng: random.Random) -> str | None:
    words = text.split(" ")
    i = rng.randrange(0, len(words) - 1)
    bare = words[i].rstrip(".,")
    words.insert(i + 1, bare.lower() if i == 0 and bare in _DECAP else bare)
    return " ".join(words)


def _drop_function_word(text: str, rng: random.Random) -> str | None:
    words = text.split(" ")
    cands = [i for i, w in enumerate(words) if i > 0 and w in _FUNCTION_WORDS]
    if not cands:
        return None
    del words[rng.choice(cands)]
    return " ".join(words)


GEC_RULES: dict[str, Rule] = {
    "agreement": lambda t, r: _replace_one(t, _AGREEMENT, r),
    "article_swap": lambda t, r: _replace_one(t, _ARTICLE, r),
    "article_drop": _drop_the,
    "preposition": lambda t, r: _replace_one(t, _PREPOSITION, r),
    "tense": lambda t, r: _replace_one(t, _PAST_TO_BASE, r),
    "plural": lambda t, r: _replace_one(t, _PLURAL_TO_SINGULAR, r),
}
FLUENCY_RULES: dict[str, Rule] = {
    "misspelling": lambda t, r: _replace_one(t, _MISSPELL, r),
    "typo_swap": _typo_swap,
    "letter_drop": _letter_drop,
    "doubled_word": _double_word,
    "missing_word": _drop_function_word,
}

# ---------------------------------------------------------------- simplification

_COMPLEX = _words(
    "buy:purchase bought:purchased help:assist helped:assisted use:utilize used:utilized "
    "need:require needs:requires many:numerous big:enormous often:frequently house:residence "
    "car:automobile tried:attempted ended:concluded started:commenced finished:completed "
    "small:diminutive tired:fatigued cheap:inexpensive quiet:tranquil fixed:rectified "
    "empty:vacant near:in_the_vicinity_of built:constructed building:constructing "
    "explained:elucidated live:reside answered:responded_to stopped:ceased began:commenced "
    "decided:resolved clearly:lucidly suddenly:abruptly safely:without_incident")
_ADDED_CLAUSES = [", as many local residents have pointed out", ", according to a number of reports",
                  ", which surprised a great many people", ", as was widely expected at the time"]


def _add_clause(text: str, rng: random.Random) -> str | None:
    if not text.endswith("."):
        return None
    return text[:-1] + rng.choice(_ADDED_CLAUSES) + "."


SIMPLIFICATION_RULES: dict[str, Rule] = {
    "complex_word": lambda t, r: _replace_one(t, _COMPLEX, r),
    "complex_words_all": lambda t, r: _replace_one(t, _COMPLEX, r, all_=True),
    "added_clause": _add_clause,
}

# ---------------------------------------------------------------- formality (informal source)

_CONTRACT = _words(
    "do_not:don't does_not:doesn't did_not:didn't is_not:isn't are_not:aren't was_not:wasn't "
    "were_not:weren't cannot:can't will_not:won't have_not:haven't it_is:it's I_am:I'm "
    "we_are:we're they_are:they're")
_SLANG = _words(
    "going_to:gonna want_to:wanna children:kids very:super friends:buddies money:cash "
    "father:dad mother:mom grandmother:grandma television:TV good:cool many:tons_of "
    "tired:beat excited:pumped cheap:dirt_cheap")


def _casual_frame(text: str, rng: random.Random) -> str | None:
    body = text.rstrip(".")
    style = rng.randrange(4)
    if style == 0:
        return rng.choice(["hey, ", "so ", "honestly ", "ok so "]) + _decap(body)
    if style == 1:
        return body + rng.choice([" lol", " haha", " tbh", "!!"])
    if style == 2:
        return body.lower()
    return _decap(body) + " lol"


FORMALITY_RULES: dict[str, Rule] = {
    "contraction": lambda t, r: _replace_one(t, _CONTRACT, r, all_=True),
    "slang": lambda t, r: _replace_one(t, _SLANG, r),
    "casual_frame": _casual_frame,
}

# ---------------------------------------------------------------- neutralization (biased source)

_BIAS_ADVERBS = ["Obviously, ", "Sadly, ", "Of course, ", "Clearly, ", "Thankfully, ",
                 "Unsurprisingly, ", "Predictably, "]
_BIAS_ADJECTIVES = ["brilliant", "notorious", "infamous", "legendary", "so-called", "beloved",
                    "wonderful", "pathetic", "heroic", "dreadful"]
# People and institutions only: bias words about ponds and weather would read as nonsense.
_AGENTS = {"teacher", "doctor", "mayor", "artist", "actor", "writer", "chef", "coach", "professor",
           "company", "police", "manager", "farmer", "baker", "pilot", "guide", "nurse", "hotel",
           "museum", "festival", "team", "city", "students", "workers", "players", "painter",
           "tourists", "club", "hospital", "library", "store", "shop", "bakery", "clown"}
_LOADED_VERBS = _words("said:claimed spoke:ranted explained:admitted told:lectured")


def _bias_adjective(text: str, rng: random.Random) -> str | None:
    spots = [m for m in re.finditer(r"\b([Tt]he) (\w+)", text) if m.group(2) in _AGENTS]
    if not spots:
        return None
    m = rng.choice(spots)
    return f"{text[:m.end(1)]} {rng.choice(_BIAS_ADJECTIVES)}{text[m.end(1):]}"


NEUTRALIZATION_RULES: dict[str, Rule] = {
    "bias_adverb": lambda t, r: _prefix(t, _BIAS_ADVERBS, r),
    "bias_adjective": _bias_adjective,
    "loaded_verb": lambda t, r: _replace_one(t, _LOADED_VERBS, r),
    "intensifier": lambda t, r: _replace_one(t, _words("very:shockingly"), r),
}

# ---------------------------------------------------------------- clarity (wordy source)

_WORDY = _words(
    "often:on_a_frequent_basis many:a_large_number_of although:despite_the_fact_that "
    "decided_to:made_the_decision_to tried_to:made_an_attempt_to agreed_to:came_to_an_agreement_to "
    "now:at_this_point_in_time soon:in_the_near_future every_day:on_each_and_every_day "
    "explained:gave_an_explanation_of visited:paid_a_visit_to answered:provided_answers_to "
    "repaired:carried_out_repairs_on because_of:as_a_consequence_of clearly:in_a_clear_manner "
    "slowly:in_a_slow_manner suddenly:all_of_a_sudden near:in_close_proximity_to "
    "until:up_until_the_time_of during:over_the_course_of all_day:for_the_entire_day "
    "again:one_more_time yesterday:on_the_previous_day last_week:during_the_previous_week "
    "this_year:during_the_course_of_this_year early:at_an_early_hour together:together_with_one_another safely:in_a_safe_manner")
_WORDY_OPENERS = ["It is the case that ", "The fact of the matter is that ",
                  "It should be noted that ", "It is worth mentioning that "]

CLARITY_RULES: dict[str, Rule] = {
    "wordy_phrase": lambda t, r: _replace_one(t, _WORDY, r),
    "because_wordy": lambda t, r: _replace_one(t, _words("because:due_to_the_fact_that"), r, guard=r"(?! of)"),
    "prior_to": lambda t, r: _replace_one(t, _words("before:prior_to after:subsequent_to"), r,
                                          guard=r"(?= (?:the|a|lunch|school|winter|sunrise|takeoff)\b)"),
    "all_wordy": lambda t, r: _replace_one(t, _words("all:each_and_every_one_of"), r, guard=r"(?= the)"),
    "most_wordy": lambda t, r: _replace_one(t, _words("most:the_majority_of"), r, guard=r"(?! of)"),
    "wordy_opener": lambda t, r: _prefix(t, _WORDY_OPENERS, r),
}

# ---------------------------------------------------------------- coherence (bad connective source)


def _drop_connective(text: str, rng: random.Random) -> str | None:
    m = re.search(r", (so|but|and then) (\w)", text)
    if not m:
        return None
    return text[:m.start()] + ". " + m.group(2).upper() + text[m.end():]


COHERENCE_RULES: dict[str, Rule] = {
    "wrong_connective": lambda t, r: _replace_one(t, _words("so:because but:so"), r, guard=r"(?= \w)")
    if ", so " in t or ", but " in t else None,
    "reversed_cause": lambda t, r: t.replace(" because ", ", so ", 1) if " because " in t else None,
    "wrong_concession": lambda t, r: _replace_one(t, _words("although:because when:although"), r)
    if t.startswith(("Although ", "When ")) else None,
    "missing_connective": _drop_connective,
    "stray_connective": lambda t, r: _prefix(t, ["However, ", "Therefore, ", "In contrast, ",
                                                 "As a result, ", "For this reason, "], r),
}

# ---------------------------------------------------------------- paraphrase (clean source)

_SYNONYMS = _words(
    "big:large small:little quickly:rapidly began:started started:began happy:glad "
    "difficult:hard easy:simple near:close_to store:shop shop:store road:street fixed:repaired "
    "repaired:fixed tired:exhausted afraid:scared bought:purchased buy:purchase often:frequently "
    "finished:completed quiet:calm very:really said:stated spoke:talked children:kids kids:children "
    "cheap:inexpensive empty:vacant sells:offers helped:assisted help:assist found:discovered "
    "lost:misplaced built:constructed closed:shut ended:finished cold:chilly loud:noisy "
    "funny:amusing every_day:daily every_year:annually every_night:nightly every_evening:each_evening "
    "gave:handed_over")
_TIME_AT_END = re.compile(
    r" ((?:yesterday|last \w+|this \w+|every \w+|on \w+(?: \w+)?|in the (?:morning|afternoon|"
    r"evening|summer|rain)|at (?:noon|dawn|six|seven|eight)|after school|before \w+))\.$")


def _front_time(text: str, rng: random.Random) -> str | None:
    m = _TIME_AT_END.search(text)
    if not m or len(text[:m.start()].split()) < 2:
        return None
    return f"{_cap(m.group(1))}, {_decap(text[:m.start()])}."


def _front_because(text: str, rng: random.Random) -> str | None:
    m = re.fullmatch(r"(.+?) because (?!of)(.+)\.", text)
    if not m:
        return None
    return f"Because {m.group(2)}, {_decap(m.group(1))}."


PARAPHRASE_RULES: dict[str, Rule] = {
    "synonyms": lambda t, r: _replace_one(t, _SYNONYMS, r, all_=True),
    "front_time": _front_time,
    "front_because": _front_because,
}

# ---------------------------------------------------------------- the rules of each task

RULES: dict[str, dict[str, Rule]] = {
    "gec": GEC_RULES, "fluency": FLUENCY_RULES, "clarity": CLARITY_RULES,
    "coherence": COHERENCE_RULES, "paraphrase": PARAPHRASE_RULES,
    "neutralization": NEUTRALIZATION_RULES, "simplification": SIMPLIFICATION_RULES,
    "formality": FORMALITY_RULES,
}
# Rules that fit (almost) any sentence: used only when no specific rule applies, or, for the tasks
# in FALLBACK_EXTRA, added on top with that probability.
FALLBACK = {"clarity": "wordy_opener", "coherence": "stray_connective", "formality": "casual_frame",
            "neutralization": "bias_adverb", "simplification": "added_clause"}
FALLBACK_EXTRA = {"formality": 0.6, "simplification": 0.2}
# Tasks whose source sometimes gets a second specific rule, for one- and two-edit examples.
MULTI_EDIT = {"gec", "fluency", "clarity", "simplification", "formality"}
