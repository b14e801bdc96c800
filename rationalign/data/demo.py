"""Demo data for all eight tasks, generated from sentences written for this project.

    python -m rationalign.data.demo --out rationalign/data/demo

No text comes from any dataset: CLEAN_SENTENCES below were written for rationalign, and every
pair is made by a rule-based transformation of one of them (corrupt -> clean for GEC, fluency,
clarity, coherence, simplification, formality, neutralization; clean -> rewrite for paraphrase).
Output is deterministic for a given seed; tests/test_demo_data.py checks that the shipped files
equal a fresh regeneration.
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rationalign.data.readers.common import DEFAULT_INSTRUCTIONS
from rationalign.data.records import Record, save_records
from rationalign.data.tasks import TASKS

CLEAN_SENTENCES = (
    'The children played in the park after school.',
    'My brother works at a small bakery near the station.',
    'She is reading a book about old ships.',
    'We went to the market on Saturday morning.',
    'The teacher gave the students a short test.',
    'Our neighbors have a big dog with a loud bark.',
    'He bought a new bicycle last week.',
    'The train was late because of the heavy snow.',
    'I often drink tea in the afternoon.',
    'The museum is closed on Mondays.',
    'They walked along the river until sunset.',
    'The baby is sleeping in the next room.',
    'My sister wrote a letter to her grandmother.',
    'The store on the corner sells fresh bread.',
    'We need more chairs for the meeting.',
    'The cat is hiding under the table.',
    'He found his keys in the kitchen drawer.',
    'The students were happy with their results.',
    'Anna plays the piano every evening.',
    'The library has many books about history.',
    'The road to the village is very narrow.',
    'We ate dinner at a quiet restaurant.',
    'The old house on the hill is empty now.',
    'My father fixed the broken fence yesterday.',
    'The flowers in the garden are blooming.',
    'She took the bus to work this morning.',
    'The doctor told him to rest for a week.',
    'I left my umbrella at the office.',
    'The company hired ten new workers this year.',
    'The river flows through the center of the town.',
    'We watched a funny movie on Friday night.',
    'The weather was cold and windy all day.',
    'Tom is learning to cook simple meals.',
    'The kids made a snowman in the yard.',
    'Our team won the game by two points.',
    'The bakery opens at seven in the morning.',
    'She painted the kitchen a bright yellow.',
    'He was tired after the long trip.',
    'The birds are singing in the trees.',
    'I bought three apples and a loaf of bread.',
    'The city built a new bridge over the river.',
    'My friends came to visit me in the summer.',
    'The car needs new tires before winter.',
    'The meeting ended early on Tuesday.',
    'She keeps her notes in a blue folder.',
    'The farmer grows corn and beans.',
    'We used a map to find the old castle.',
    'The phone rang during the lesson.',
    'They are planning a trip to the mountains.',
    'The boy kicked the ball over the fence.',
    'The shop sells cheap shoes and warm coats.',
    'Her parents live in a small town by the sea.',
    'The workers finished the new school in June.',
    'I saw a large bird on the roof.',
    'The soup is too hot to eat.',
    'He has a meeting with his manager at noon.',
    'The students asked the teacher many questions.',
    'My grandmother makes the best apple pie.',
    'The window in the bedroom is broken.',
    'We waited for the bus in the rain.',
    'The company sells its products in many countries.',
    'She gave her old clothes to a charity.',
    'The lake freezes every winter.',
    'The nurse helped the patient with his dinner.',
    'My uncle drives a large truck for a living.',
    'The lights in the hall went out suddenly.',
    'The girls are practicing for the school concert.',
    'He forgot his lunch at home again.',
    'The hotel is close to the beach.',
    'We planted two trees in the garden.',
    'The artist showed her paintings at the gallery.',
    'The plane landed safely at the airport.',
    'I wear a warm hat when it is cold.',
    'The dog ran across the street.',
    'The club meets on the first Monday of the month.',
    'My mother works as a nurse at the hospital.',
    'The price of coffee went up this year.',
    'They bought a house near the park.',
    'The student forgot the answer to the last question.',
    'The bridge was closed for repairs.',
    'The chef cut the vegetables into small pieces.',
    'Our school has a large library and a pool.',
    'She answered all the emails before lunch.',
    'The game started at eight in the evening.',
    'He carried the heavy boxes up the stairs.',
    'The town has a market every Thursday.',
    'We cleaned the house before the guests arrived.',
    'The children were excited about the holiday.',
    'The museum opened a new room for modern art.',
    'I lost my glasses on the train.',
    'The farmer sold his eggs at the market.',
    'The rain stopped in the afternoon.',
    'My cousin studies biology at the university.',
    'The computer in the office is very slow.',
    'We need to buy milk and eggs.',
    'The film was longer than we expected.',
    'The old man sat on a bench in the square.',
    'The mayor opened the new park on Sunday.',
    'Our class visited a farm last month.',
    'The boat sailed across the lake at dawn.',
    'She teaches math at a high school.',
    'The streets were empty on the holiday.',
    'He repaired the roof before the storm.',
    'The team practiced in the gym every day.',
    'The police found the missing bicycle.',
    'I cooked rice and fish for dinner.',
    'The shop closes early on Sundays.',
    'The actor gave a short speech after the show.',
    'My neighbor helped me carry the sofa.',
    'The river was too deep to cross.',
    'The workers are building a new road.',
    'The girl drew a picture of her family.',
    'The bus stops in front of the school.',
    'We used the money to repair the roof.',
    'The writer finished her second novel in May.',
    'The students walked to the museum in pairs.',
    'The company opened an office in the city.',
    'The child is afraid of the dark.',
    'The baker sells bread and small cakes.',
    'He called his mother on her birthday.',
    'The garden needs water every morning.',
    'The village has one shop and a church.',
    'She found a wallet on the sidewalk.',
    'The manager signed the contract on Monday.',
    'I read the newspaper on the train.',
    'The coach told the players to rest.',
    'The hospital hired more nurses this winter.',
    'The kids built a small fort out of boxes.',
    'My aunt sent us a card from Spain.',
    'The festival attracts many visitors every year.',
    'The light in the kitchen is very bright.',
    'We took many photos at the wedding.',
    'The storm damaged several houses in the area.',
    'The professor explained the problem clearly.',
    'The tourists visited the castle in the morning.',
    'My brother is saving money for a new car.',
    'The ducks swam slowly across the pond.',
    'It rained all night, so the game was cancelled.',
    'She studied hard, so she passed the exam.',
    'The road was icy, so we drove slowly.',
    'He was hungry, so he made a sandwich.',
    'The shop was closed, so we went home.',
    'The baby was tired, so she went to bed early.',
    'The tickets were cheap, so we bought four.',
    'The room was dark, so he turned on the lamp.',
    'We stayed inside because it was raining.',
    'The plants died because nobody watered them.',
    'She was late because her bus broke down.',
    'He wore a coat because the wind was cold.',
    'The children laughed because the clown fell down.',
    'The store closed because it had few customers.',
    'We took a taxi because the trains were not running.',
    'The dog barked because it heard a noise.',
    'The test was hard, but most students passed.',
    'The hotel was old, but the rooms were clean.',
    'He was tired, but he finished his work.',
    'The food was simple, but it tasted good.',
    'It was sunny, but the water was cold.',
    'The car is old, but it still runs well.',
    'She was nervous, but she gave a good speech.',
    'The path was steep, but the view was worth it.',
    'Although the film was long, nobody left early.',
    'Although it was late, the shop was still open.',
    'Although he was sick, he went to work.',
    'Although the house is small, it has a big garden.',
    'Although the task was difficult, we finished on time.',
    'Although she was busy, she helped her friend.',
    'First we bought the tickets, and then we found our seats.',
    'She finished her homework, and then she watched television.',
    'He washed the dishes, and then he swept the floor.',
    'We visited the museum, and then we had lunch.',
    'When the bell rang, the students left the room.',
    'When it snows, the children play outside.',
    'When the guests arrived, we served dinner.',
    'When the music started, everyone began to dance.',
    'The office is quiet in the early morning.',
    'My friend lent me a good book about birds.',
    'The little girl lost her red balloon.',
    'The city is planning a new bus line.',
    'The farmer fed the cows before sunrise.',
    'She decided to learn a new language.',
    'We agreed to meet at the station at noon.',
    'He tried to open the jar, but the lid was stuck.',
    'The pilot spoke to the passengers before takeoff.',
    'My parents gave me a watch for my birthday.',
    'The players were happy after the match.',
    'The students use computers in the library.',
    'The family eats dinner together every night.',
    'The park is full of people on weekends.',
    'The painter needs a ladder to reach the ceiling.',
    'The old bridge is made of stone.',
    'Most people in the town know the baker.',
    'The soup needs more salt.',
    'The guide showed us the way to the lake.',
    'The printer is out of paper again.',
    'Our teacher often reads poems to the class.',
    'The new student sat next to me.',
    'The sun rose over the hills at six.',
)

MAX_SOURCE_WORDS = 25  # the demo trains a 135M model on CPU: keep inputs short

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

# ---------------------------------------------------------------- generation

RULES: dict[str, dict[str, Rule]] = {
    "gec": GEC_RULES, "fluency": FLUENCY_RULES, "clarity": CLARITY_RULES,
    "coherence": COHERENCE_RULES, "paraphrase": PARAPHRASE_RULES,
    "neutralization": NEUTRALIZATION_RULES, "simplification": SIMPLIFICATION_RULES,
    "formality": FORMALITY_RULES,
}
# Rules that fit (almost) any sentence: used only when no specific rule applies, or, for the tasks
# in _FALLBACK_EXTRA, added on top with that probability.
FALLBACK = {"clarity": "wordy_opener", "coherence": "stray_connective", "formality": "casual_frame",
            "neutralization": "bias_adverb", "simplification": "added_clause"}
_FALLBACK_EXTRA = {"formality": 0.6, "simplification": 0.2}
# Tasks whose source sometimes gets a second specific rule, for one- and two-edit examples.
_MULTI_EDIT = {"gec", "fluency", "clarity", "simplification", "formality"}
SPLITS = ("labeled", "unlabeled", "test")


@dataclass
class Example:
    source: str
    target: str
    rules: list[str]
    alternatives: list[str] = field(default_factory=list)  # extra references (test split)


def _apply_rules(task: str, text: str, rng: random.Random) -> tuple[str, list[str]] | None:
    fallback = FALLBACK.get(task)
    names = [n for n in RULES[task] if n != fallback]
    rng.shuffle(names)
    out, used = text, []
    for name in names:
        new = RULES[task][name](out, rng)
        if new is not None and new != out:
            out, used = new, used + [name]
            if task not in _MULTI_EDIT or len(used) == 2 or rng.random() < 0.6:
                break
    if fallback and (not used or rng.random() < _FALLBACK_EXTRA.get(task, 0.0)):
        new = RULES[task][fallback](out, rng)
        if new is not None and new != out:
            out, used = new, used + [fallback]
    return (out, used) if used else None


def make_example(task: str, clean: str, rng: random.Random) -> Example | None:
    """One pair from one clean sentence, or None when no rule of the task applies."""
    made = _apply_rules(task, clean, rng)
    if made is None:
        return None
    text, rules = made
    if task == "paraphrase":  # the clean sentence is the input; the rewrite is the gold
        alts = [alt for name in rules if len(rules) > 1
                for alt in [PARAPHRASE_RULES[name](clean, random.Random(name))] if alt]
        ex = Example(clean, text, rules, [a for a in dict.fromkeys(alts) if a not in (clean, text)])
    else:
        ex = Example(text, clean, rules)
    if ex.source == ex.target or len(ex.source.split()) > MAX_SOURCE_WORDS:
        return None
    return ex


def _split_pool(n: int, seed: int, test_fraction: float = 0.25) -> tuple[list[int], list[int]]:
    """Disjoint sentence pools, so no test sentence (in any task's form) is seen in training."""
    order = list(range(n))
    random.Random(f"{seed}:pool").shuffle(order)
    k = int(n * test_fraction)
    return sorted(order[:k]), sorted(order[k:])


def _draw(task: str, pool: list[int], counts: list[int], rng: random.Random) -> list[list[tuple[int, Example]]]:
    order = list(pool)
    rng.shuffle(order)
    groups: list[list[tuple[int, Example]]] = [[] for _ in counts]
    g, seen = 0, set()
    for idx in order:
        while g < len(counts) and len(groups[g]) >= counts[g]:
            g += 1
        if g == len(counts):
            break
        ex = make_example(task, CLEAN_SENTENCES[idx], rng)
        if ex is not None and ex.source not in seen:
            seen.add(ex.source)
            groups[g].append((idx, ex))
    if any(len(grp) < c for grp, c in zip(groups, counts)):
        got = [len(grp) for grp in groups]
        raise ValueError(f"task {task!r}: only {got} examples for requested {counts}; "
                         "ask for fewer or add clean sentences")
    return groups


def generate(seed: int = 0, n_labeled: int = 40, n_unlabeled: int = 30,
             n_test: int = 15) -> dict[str, list[Record]]:
    """{'labeled': [...], 'unlabeled': [...], 'test': [...]} with every task in each split."""
    test_pool, train_pool = _split_pool(len(CLEAN_SENTENCES), seed)
    out: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for task in TASKS:
        rng = random.Random(f"{seed}:{task}")
        labeled, unlabeled = _draw(task, train_pool, [n_labeled, n_unlabeled], rng)
        (test,) = _draw(task, test_pool, [n_test], rng)
        for split, group in (("labeled", labeled), ("unlabeled", unlabeled), ("test", test)):
            for i, (idx, ex) in enumerate(group):
                out[split].append(Record(
                    id=f"demo-{split}-{task}-{i:03d}", task=task,
                    instruction=DEFAULT_INSTRUCTIONS[task], source=ex.source,
                    target=None if split == "unlabeled" else ex.target,
                    references=[ex.target, *ex.alternatives] if split == "test" else None,
                    meta={"split": split, "rules": ex.rules, "sentence": idx, "seed": seed},
                ))
    _check_no_leak(out)
    return out


def _check_no_leak(splits: dict[str, list[Record]]) -> None:
    train = {r.source for s in ("labeled", "unlabeled") for r in splits[s]}
    leaked = [r.id for r in splits["test"] if r.source in train]
    if leaked:
        raise ValueError(f"test sources also in training splits: {leaked}")


def write_demo(out_dir: str | Path, **kwargs) -> dict[str, int]:
    out_dir = Path(out_dir)
    return {split: save_records(out_dir / f"{split}.jsonl", recs) for split, recs in generate(**kwargs).items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).with_suffix("")), help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labeled", type=int, default=40, help="labeled pairs per task")
    ap.add_argument("--unlabeled", type=int, default=30, help="unlabeled sources per task")
    ap.add_argument("--test", type=int, default=15, help="test pairs per task")
    a = ap.parse_args(argv)
    counts = write_demo(a.out, seed=a.seed, n_labeled=a.labeled, n_unlabeled=a.unlabeled, n_test=a.test)
    print(f"wrote {counts} to {a.out}")


if __name__ == "__main__":
    main()
