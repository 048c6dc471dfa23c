"""How customers reword a request without changing what it asks: reorderings, synonyms, typos and
polite wrappers. Each keeps the intent; none touches a number, a name or a quoted text.

- ``REORDERINGS``: per task, templates with the same slots in another order ("For our May
  newsletter, write a short intro paragraph about ..."). A customer who reorders uses one of
  them, always the same (people keep their habits).
- ``SYNONYMS``: template words and the words some customers use instead ("Write" / "Compose",
  "short" / "brief", "photo" / "picture"). A customer who rewords picks one alternative per
  word, once. Some alternatives are phrases ("Come up with") that share no word with the
  original: a detector without that synonym cannot match them, as with real traffic.
- ``typo``: one slip in one word of five letters or more (two letters swapped, one dropped,
  one doubled, or a key next to the right one), never in the first letter, a number or a
  capitalized word.
- ``PREFIXES`` and ``SUFFIXES``: courtesy around the request ("Hi, could you ...", "... Thanks!").

>>> import random
>>> reword("Write a short intro paragraph.", {"write": "Compose", "short": "brief"})
'Compose a brief intro paragraph.'
>>> typo("Write a blog post about cold brew", random.Random(3))
'Write a blog post abot cold brew'
"""
from __future__ import annotations

import random
import re

__all__ = ["REORDERINGS", "SYNONYMS", "PREFIXES", "SUFFIXES", "reword", "synonym_choices",
           "typo", "TYPO_MIN_LETTERS"]

REORDERINGS: dict[str, tuple[str, ...]] = {
    "blog_post": ("For {audience}, write a {words}-word blog post about {topic}.",
                  "Write a blog post about {topic} for {audience} in {words} words."),
    "product_description": ("Write a product description for {product} in {pwords} words.",
                            "For {product}, write a {pwords}-word product description."),
    "social_caption": ("Write a caption for {platform} about {topic}, {emoji} emojis.",
                       "Write a {platform} caption, {emoji} emojis, about {topic}."),
    "email_subject": ("For {campaign}, suggest {count} email subject lines.",
                      "Suggest {count} subject lines for an email about {campaign}."),
    "seo_meta": ("For a page about {topic}, write an SEO meta description of at most 155 characters.",),
    "help_article": ("In {app}, write step-by-step instructions to turn {switch} {feature}.",),
    "newsletter_intro": ("For our {month} newsletter, write a short intro paragraph about {topic}.",),
    "translation": ("Translate this into {language}: {snippet}",),
    "summary": ("In {bullets} bullet points, summarize this article:\n\n{article}",),
    "press_release": ("For {company}, write a press release announcing {news}.",),
    "legal_notice": ("For {company} serving customers in {region}, draft a {notice}.",),
    "health_copy": ("Explain {health} in patient-friendly copy.",),
    "keyword_extraction": ("From this text, extract {kcount} SEO keywords: {article}",),
    "hero_image": ("A {style} hero image of {scene}, {people} people, {light}, 16:9.",),
    "product_shot": ("A studio photo of {product}, {backdrop} background.",),
    "thumbnail": ("A bold video thumbnail in {color} tones about {topic}.",),
    "podcast_intro": ("A {mood} {seconds}-second podcast intro jingle for a show about {topic}.",),
}

# A template word (lower case) and what some customers type instead. Kept to words whose swap
# changes nothing in the request, not even the answer's length as the simulated Claude reads it
# (``cfopt.providers.lengths``: "classify" and "categorize" both ask for a label, "route this"
# has no synonym there); the first letter's case follows the original.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "write": ("create", "compose", "draft"),
    "draft": ("write", "prepare"),
    "suggest": ("propose", "brainstorm", "come up with"),
    "short": ("brief",),
    "intro": ("introductory", "opening"),
    "instructions": ("directions",),
    "blog post": ("blog article",),
    "summarize": ("sum up", "recap"),
    "classify": ("categorize", "categorise"),
    "customer review": ("client review",),
    "extract": ("pull", "identify"),
    "translate into": ("translate to",),
    "explaining": ("that explains",),
    "announcing": ("to announce",),
    "photo": ("photograph", "picture"),
    "image": ("picture",),
    "copy": ("text",),
}

# (phrase, share): what a customer who types by hand puts before and after a request.
PREFIXES = (("", 0.45), ("Please ", 0.18), ("Could you ", 0.09), ("Can you please ", 0.08),
            ("Kindly ", 0.05), ("I'd like you to ", 0.05), ("Would you please ", 0.04),
            ("Hi, could you ", 0.06))
SUFFIXES = (("", 0.8), (", please", 0.08), (" Thanks!", 0.07), (" Thank you.", 0.05))
TYPO_MIN_LETTERS = 5
_KEYS = "qwertyuiop asdfghjkl zxcvbnm".split()
_ANY = re.compile(r"(?<![\w{-])(%s)(?![\w}-])" % "|".join(
    re.escape(w) for w in sorted(SYNONYMS, key=len, reverse=True)), re.IGNORECASE)


def synonym_choices(rng: random.Random) -> dict[str, str]:
    """Return one customer's own words: one alternative for each word of ``SYNONYMS``."""
    return {word: rng.choice(alternatives) for word, alternatives in SYNONYMS.items()}


def reword(template: str, choices: dict[str, str]) -> str:
    """Return ``template`` with each word of ``choices`` replaced, whole words only, in one pass.

    Longer phrases win ("blog post" before "post"); ``{slots}`` are left alone.
    """
    def swap(m: re.Match[str]) -> str:
        new = choices.get(m.group().lower())
        if new is None:
            return m.group()
        return new[0].upper() + new[1:] if m.group()[0].isupper() else new
    return _ANY.sub(swap, template)


def _slip(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:                                   # two letters swapped
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:                                   # one dropped
        return word[:i] + word[i + 1:]
    if kind == 2:                                   # one doubled
        return word[:i] + word[i] + word[i:]
    row = next((r for r in _KEYS if word[i] in r), None)   # a neighbouring key
    if row is None:
        return word[:i] + word[i] + word[i:]
    j = row.index(word[i])
    near = [row[k] for k in (j - 1, j + 1) if 0 <= k < len(row)]
    return word[:i] + rng.choice(near) + word[i + 1:]


def typo(text: str, rng: random.Random) -> str:
    """Return ``text`` with one slip in one lower-case word of ``TYPO_MIN_LETTERS`` letters or more."""
    words = [m for m in re.finditer(r"(?<![\w-])[a-z]{%d,}(?![\w-])" % TYPO_MIN_LETTERS, text)]
    if not words:
        return text
    m = rng.choice(words)
    slipped = _slip(m.group(), rng)
    if slipped == m.group():
        slipped = m.group()[:1] + m.group()[2:]  # a doubled letter swapped with itself: drop one
    return text[:m.start()] + slipped + text[m.end():]
