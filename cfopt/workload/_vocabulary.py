"""What ContentFlow's customers ask for: tasks, their prompt templates and the words that fill them.

Everything here was written for cfopt (no prompt comes from a public prompt set). A ``Task`` has
one canonical template per meaning: two requests of a task mean the same thing exactly when they
fill its slots with the same values, so an intent is a task plus its slot values. Look-alikes come
from slots whose values differ by one word or number ("turn on" / "turn off", "with" / "without"
emojis, "300-word" / "500-word").

Customers are small businesses in one of ``DOMAINS``; a domain supplies topics, products, scenes
and photo queries, so a customer keeps returning to the same few subjects.

A text or analysis task's ``max_tokens`` is what ContentFlow's app would set for it: a cap with
headroom over the answer it expects, never the expected length itself (a cap at the expected
length cuts half the answers short). Word-count tasks derive it from the words asked for
(``per_word``, with ``CAP_HEADROOM`` in ``_generate``); the others carry a fixed cap, a round
number like an app's defaults, above the longest answer the task's prompt asks for and mostly
twice that or more (the comments give the answer sizes; ``cfopt.providers.lengths`` says how the
simulated Claude sizes answers). Free-length tasks (no length asked for) get answers shaped
like the Azure trace's (p99 601 tokens, max 1,000), hence 1024. The caps are assumptions, not
measurements: the trace records answers, not the caps they were written under.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Task", "TASKS", "DOMAINS", "POOLS", "SNIPPETS", "document", "DOC_SLOTS"]


@dataclass(frozen=True, slots=True)
class Task:
    """A kind of request: its type, template, share of traffic and quality/priority/length mix."""

    name: str
    type: str
    weight: float                          # share of requests before user habits
    template: str                          # canonical prompt; ``{slot}`` placeholders
    quality: tuple[float, float, float]    # P(low), P(standard), P(critical) per intent
    priority: tuple[float, float, float]   # P(high), P(medium), P(low) per request
    max_tokens: int | None = None          # the output cap the app sets for this task ...
    per_word: float = 0.0                  # ... or one from the ``words`` slot (tokens/word)
    polite: bool = True                    # customers may add "please" and friends
    bulk: bool = False                     # may arrive in bulk bursts (a list of items)

    @property
    def slots(self) -> tuple[str, ...]:
        """Return the template's slot names in order."""
        import string
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.template) if f)


_T, _A = "text", "analysis"
TASKS: tuple[Task, ...] = (
    Task("blog_post", _T, 0.055, "Write a {words}-word blog post about {topic} for {audience}.",
         (0.05, 0.95, 0.0), (0.1, 0.6, 0.3), per_word=1.34),
    Task("product_description", _T, 0.110,
         "Write a {pwords}-word product description for {product}.",
         (0.05, 0.95, 0.0), (0.2, 0.5, 0.3), per_word=1.34, bulk=True),
    Task("social_caption", _T, 0.090,
         "Write a {platform} caption about {topic}, {emoji} emojis.",
         (0.35, 0.65, 0.0), (0.4, 0.5, 0.1), max_tokens=128),  # a caption: ~45 tokens
    Task("email_subject", _T, 0.060, "Suggest {count} email subject lines for {campaign}.",
         (0.5, 0.5, 0.0), (0.4, 0.5, 0.1), max_tokens=256),  # 3-10 lines: ~35-140 tokens
    Task("seo_meta", _T, 0.050,
         "Write an SEO meta description of at most 155 characters for a page about {topic}.",
         (0.1, 0.9, 0.0), (0.1, 0.5, 0.4), max_tokens=128, bulk=True),  # 155 chars: ~40
    Task("help_article", _T, 0.040,
         "Write step-by-step instructions to turn {switch} {feature} in {app}.",
         (0.0, 1.0, 0.0), (0.2, 0.6, 0.2), max_tokens=2048),  # "step by step": free x 2, p99 1,200
    Task("newsletter_intro", _T, 0.030,
         "Write a short intro paragraph for our {month} newsletter about {topic}.",
         (0.1, 0.9, 0.0), (0.1, 0.6, 0.3), max_tokens=512),  # "short": free x 0.45, max ~500
    Task("translation", _T, 0.050, "Translate into {language}: {snippet}",
         (0.0, 1.0, 0.0), (0.3, 0.5, 0.2), max_tokens=128, bulk=True),  # a UI string: ~10-25
    Task("summary", _T, 0.040, "Summarize this article in {bullets} bullet points:\n\n{article}",
         (0.1, 0.9, 0.0), (0.2, 0.6, 0.2), max_tokens=256),  # 3-5 bullets: ~55-105
    Task("press_release", _T, 0.015, "Write a press release announcing {news} for {company}.",
         (0.0, 0.4, 0.6), (0.3, 0.6, 0.1), max_tokens=1024),  # free length: p99 ~600
    Task("legal_notice", _T, 0.012, "Draft a {notice} for {company} serving customers in {region}.",
         (0.0, 0.1, 0.9), (0.2, 0.7, 0.1), max_tokens=1024),  # free length: p99 ~600
    Task("health_copy", _T, 0.013, "Write patient-friendly copy explaining {health}.",
         (0.0, 0.2, 0.8), (0.2, 0.7, 0.1), max_tokens=1024),  # free length: p99 ~600
    Task("sentiment_analysis", _A, 0.045,
         "Classify the sentiment of this customer review as positive, negative or mixed: {review}",
         (0.2, 0.8, 0.0), (0.2, 0.4, 0.4), max_tokens=16, bulk=True),  # a label: ~2
    Task("keyword_extraction", _A, 0.030, "Extract {kcount} SEO keywords from this text: {article}",
         (0.3, 0.7, 0.0), (0.1, 0.5, 0.4), max_tokens=100, bulk=True),  # 5-10 lines: ~35-80
    Task("ticket_routing", _A, 0.030,
         "Route this support ticket to billing, shipping, account or product: {ticket}",
         (0.2, 0.8, 0.0), (0.5, 0.4, 0.1), max_tokens=16, bulk=True),  # a label: ~2
    Task("hero_image", "image", 0.050,
         "A {style} hero image of {scene}, {light}, {people} people, 16:9.",
         (0.1, 0.9, 0.0), (0.3, 0.6, 0.1)),
    Task("product_shot", "image", 0.045, "A studio photo of {product} on a {backdrop} background.",
         (0.1, 0.9, 0.0), (0.2, 0.5, 0.3), bulk=True),
    Task("thumbnail", "image", 0.050, "A bold video thumbnail about {topic} in {color} tones.",
         (0.4, 0.6, 0.0), (0.5, 0.4, 0.1)),
    Task("stock_photo", "photo", 0.100, "{photo}", (0.3, 0.7, 0.0), (0.6, 0.3, 0.1), polite=False),
    Task("product_video", "video", 0.020, "A 5-second video of {product} {motion}.",
         (0.0, 1.0, 0.0), (0.1, 0.5, 0.4)),
    Task("podcast_intro", "audio", 0.012,
         "A {seconds}-second {mood} podcast intro jingle for a show about {topic}.",
         (0.1, 0.9, 0.0), (0.1, 0.6, 0.3)),
    Task("voiceover", "audio", 0.010, "A {voice} voiceover reading: {snippet}",
         (0.0, 1.0, 0.0), (0.2, 0.6, 0.2)),
)

# name: (topics, products, scenes, photo queries)
DOMAINS: dict[str, tuple[tuple[str, ...], ...]] = {
    "coffee": (("cold brew at home", "single-origin beans", "latte art for beginners",
                "decaf myths", "pour-over ratios", "storing coffee beans"),
               ("a ceramic pour-over dripper", "a burr grinder with 40 settings",
                "a 1 kg bag of Ethiopian beans", "an insulated travel mug"),
               ("a sunny corner cafe", "a barista pouring latte art"),
               ("coffee beans close-up", "latte art", "cafe interior", "barista at work")),
    "fitness": (("morning stretching", "strength training for beginners", "rest days",
                 "hydration during workouts", "10-minute home workouts", "running in winter"),
                ("adjustable dumbbells", "a foam roller", "a heart-rate chest strap",
                 "a non-slip yoga mat"),
                ("a bright home gym", "runners on a city bridge at dawn"),
                ("woman running at sunrise", "yoga class", "dumbbells on floor", "gym interior")),
    "travel": (("a weekend in Lisbon", "packing light", "travelling with kids",
                "train travel in Japan", "budget hostels", "solo hiking safety"),
               ("a carry-on backpack", "a universal travel adapter", "noise-cancelling earbuds",
                "a packable rain jacket"),
               ("a mountain lake at sunrise", "a busy night market"),
               ("mountain lake", "airport window", "old town street", "beach at sunset")),
    "pets": (("house-training a puppy", "cat nutrition", "caring for a senior dog",
              "adopting a rescue cat", "dog-friendly hikes", "grooming long-haired cats"),
             ("a self-cleaning litter box", "an orthopedic dog bed", "a slow-feeder bowl",
              "a reflective dog harness"),
             ("a golden retriever in a park", "a cat napping on a windowsill"),
             ("puppy portrait", "cat on sofa", "dog on beach", "kitten playing")),
    "skincare": (("daily sunscreen", "a simple night routine", "dry winter skin",
                  "reading ingredient labels", "skincare for teens", "retinol basics"),
                 ("a vitamin C serum", "a fragrance-free moisturiser", "a mineral sunscreen SPF 50",
                  "a gentle foaming cleanser"),
                 ("a minimalist bathroom shelf", "morning light on a vanity"),
                 ("skincare products flat lay", "woman applying cream", "bathroom shelf",
                  "spa towels")),
    "smarthome": (("saving energy in winter", "setting up a smart thermostat",
                   "home Wi-Fi security",
                   "automating morning lights", "choosing a robot vacuum", "smart locks"),
                  ("a smart plug with energy monitoring", "a video doorbell",
                   "a mesh Wi-Fi system", "a robot vacuum with mapping"),
                  ("a cosy living room at night", "a modern kitchen with smart devices"),
                  ("smart speaker", "modern living room", "thermostat on wall", "home office")),
    "saas": (("remote work", "async meetings", "onboarding new hires", "time blocking",
              "writing better release notes", "reducing churn"),
             ("a team calendar app", "a password manager", "a project tracker for small teams",
              "an invoicing tool"),
             ("a team collaborating in a bright office", "a laptop on a tidy desk"),
             ("laptop on desk", "team meeting", "whiteboard brainstorm", "remote worker at home")),
    "bakery": (("sourdough starters", "gluten-free baking", "weekly meal prep",
                "seasonal fruit tarts", "baking with kids", "bread flour types"),
               ("a cast-iron skillet", "a proofing basket", "a stand mixer", "a set of cake tins"),
               ("fresh loaves on a rustic table", "a flour-dusted kitchen counter"),
               ("fresh bread", "croissants", "baker kneading dough", "birthday cake")),
    "fashion": (("a capsule wardrobe", "sustainable fabrics", "caring for wool",
                 "dressing for job interviews", "summer linen", "repairing jeans"),
                ("a linen summer shirt", "waterproof hiking boots", "a recycled wool scarf",
                 "a leather crossbody bag"),
                ("a model walking down a city street", "a clothing rail in a boutique"),
                ("clothing rack", "street style", "folded sweaters", "shoes on floor")),
    "finance": (("budgeting for students", "building an emergency fund", "paying off debt",
                 "saving for a first home", "understanding credit scores", "side-hustle taxes"),
                ("a high-yield savings account", "a budgeting app", "a no-fee credit card",
                 "a retirement planner"),
                ("a couple planning finances at a kitchen table", "coins and a notebook"),
                ("calculator and receipts", "piggy bank", "stock chart", "couple with laptop")),
    "garden": (("balcony herbs", "composting at home", "drought-tolerant plants",
                "growing tomatoes", "attracting pollinators", "winter pruning"),
               ("a self-watering planter", "a compost bin", "ergonomic pruning shears",
                "a raised garden bed kit"),
               ("a lush balcony garden", "hands planting seedlings"),
               ("vegetable garden", "potted herbs", "flower meadow", "watering can")),
    "clinic": (("flu vaccination", "sleep hygiene", "managing seasonal allergies",
                "preparing for a blood test", "healthy screen time for kids", "heat stroke signs"),
               ("a digital blood-pressure monitor", "an ear thermometer", "a first-aid kit",
                "a pill organiser"),
               ("a calm clinic waiting room", "a nurse talking with a patient"),
               ("doctor with patient", "stethoscope", "clinic reception", "healthy breakfast")),
}

POOLS: dict[str, tuple[str, ...]] = {
    "words": ("250", "300", "350"),
    "pwords": ("80", "100", "120", "160"),
    "audience": ("beginners", "busy parents", "small business owners", "students", "retirees"),
    "platform": ("Instagram", "LinkedIn", "Facebook", "TikTok"),
    "emoji": ("with", "without"),
    "count": ("3", "5", "10"),
    "kcount": ("5", "10"),
    "bullets": ("3", "5"),
    "campaign": ("our spring sale", "a product launch", "a webinar invitation",
                 "an abandoned-cart reminder", "a customer win-back offer", "Black Friday",
                 "a loyalty programme", "a price increase notice"),
    "switch": ("on", "off"),
    "feature": ("dark mode", "two-factor authentication", "automatic backups",
                "email notifications", "location sharing", "auto-renewal"),
    "app": ("our mobile app", "the web dashboard", "the desktop app"),
    "month": ("January", "March", "May", "July", "September", "November"),
    "language": ("Spanish", "French", "German", "Italian", "Portuguese", "Japanese", "Dutch"),
    "news": ("a new CEO", "a $2M seed round", "a $10M Series A", "a new office in Berlin",
             "a partnership with a local charity", "a product recall"),
    "company": ("a coffee roastery", "a fitness studio", "a travel agency", "a pet shop",
                "a skincare brand", "a smart-home startup", "a software company", "a bakery"),
    "notice": ("cookie consent banner", "privacy policy summary", "return policy",
               "terms-of-service summary", "reply to a data deletion request"),
    "region": ("the EU", "California", "the UK", "Canada"),
    "health": ("how to take antibiotics safely", "what a fever in children means",
               "when to see a doctor about a headache", "how vaccines are tested",
               "what high blood pressure means", "how to use an asthma inhaler"),
    "style": ("photorealistic", "flat illustration", "watercolor", "3D render", "minimalist"),
    "light": ("golden-hour light", "soft daylight", "moody evening light"),
    "people": ("with", "without"),
    "backdrop": ("white", "black", "wooden", "marble"),
    "color": ("orange", "blue", "green", "purple"),
    "motion": ("rotating on a turntable", "being unboxed", "in slow-motion close-up"),
    "seconds": ("10", "15", "30"),
    "mood": ("upbeat", "calm", "cinematic"),
    "voice": ("warm female", "deep male", "friendly young"),
}

_UI_STRINGS = (("Free shipping on orders over ${n}.", ("25", "50", "75", "100")),
               ("Save {n}% on your first order.", ("10", "15", "20", "25")),
               ("Your order has shipped and will arrive in {n} days.", ("2", "3", "5")),
               ("Sign up today and get {n} days free.", ("7", "14", "30")),
               ("Only {n} left in stock.", ("2", "3", "5")),
               ("Returns are free within {n} days.", ("14", "30", "60")),
               ("Join {n},000 happy customers.", ("5", "10", "50")),
               ("Your trial ends in {n} days.", ("3", "7")),
               ("Your password was changed {n} minutes ago.", ("5", "10")),
               ("We will call you back within {n} hours.", ("2", "24")))
SNIPPETS = tuple(text.format(n=n) for text, numbers in _UI_STRINGS for n in numbers)
_OPINIONS = {
    "positive": ("It works exactly as described.", "Setup took five minutes.",
                 "Great value for the price.", "The support team answered within an hour.",
                 "I already ordered a second one.", "My whole family loves it.",
                 "It looks even better than in the photos.", "Delivery was a day early."),
    "negative": ("It stopped working after a week.", "The box arrived damaged.",
                 "Nobody answered my emails.", "It is much smaller than the photos suggest.",
                 "I had to return it.", "The instructions were missing.",
                 "It feels cheap and flimsy.", "The delivery took three weeks."),
}
_TICKETS = ("I was charged twice for {p}.", "My order of {p} has not arrived yet.",
            "I cannot log in to my account since yesterday.", "How do I change the size of {p}?",
            "The discount code did not apply to {p}.", "{P} arrived with a missing part.",
            "Please update my delivery address.", "Can I pay for {p} in instalments?")
_ARTICLE = ("{T} comes up in almost every question our readers send us.",
            "Most people start with good intentions and give up after a couple of weeks.",
            "The trick is to change one small habit at a time.",
            "Experts we spoke to agree that consistency beats intensity.",
            "A simple checklist on the fridge helps more than an expensive gadget.",
            "Costs vary a lot, so compare at least three options before you buy.",
            "Beginners often overlook the basics, and the basics matter most.",
            "We tested {p} for a month to see whether it helps with {t}.",
            "The results surprised us: small changes added up quickly.",
            "If you only remember one thing about {t}, make it this: start today.")

DOC_SLOTS = ("review", "ticket", "article", "snippet")


def document(kind: str, domain: str, k: int) -> str:
    """Return document ``k`` of ``kind`` for ``domain``: the same arguments, the same text."""
    rng = random.Random(f"{kind}:{domain}:{k}")
    topics, products, _, _ = DOMAINS[domain]
    p, t = rng.choice(products), rng.choice(topics)
    if kind == "review":
        mood = rng.choice(("positive", "negative", "mixed"))
        if mood == "mixed":
            lines = [rng.choice(_OPINIONS["positive"]), rng.choice(_OPINIONS["negative"])]
        else:
            lines = rng.sample(_OPINIONS[mood], 2)
        when = rng.choice(("last week", "a month ago", "for my partner", "as a gift",
                           "after reading your blog", "on sale", "in March"))
        return f"I bought {p} {when}. " + " ".join(lines)
    if kind == "ticket":
        line = rng.choice(_TICKETS)
        return line.format(p=p, P=p[0].upper() + p[1:]) + f" Order {rng.randrange(10_000, 99_999)}."
    if kind == "article":
        lines = rng.sample(_ARTICLE, rng.randint(4, 6))
        return " ".join(s.format(T=t[0].upper() + t[1:], t=t, p=p) for s in lines)
    if kind == "snippet":
        return SNIPPETS[k % len(SNIPPETS)]
    raise ValueError(f"unknown document kind {kind!r}")
