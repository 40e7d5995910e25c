"""A deterministic toy translator (English -> a pseudo-German) for the simulated servers.

Word by word from a small dictionary, with a glossary of domain terms and brand
names that must stay verbatim. `translate(text)` is the good release; with
`regressed=True` it translates brand names, uses wrong words for glossary terms and
leaves some words in English — what a worse model or prompt would do. Unknown words
pass through unchanged. Pure and deterministic: the same text, the same answer.
"""

from __future__ import annotations

import hashlib
import re

BRANDS: tuple[str, ...] = ("Acme Cloud", "Acme Pay", "Globex Analytics")

# What the regressed release makes of the brand names.
TRANSLATED_BRANDS: dict[str, str] = {
    "Acme Cloud": "Acme Wolke",
    "Acme Pay": "Acme Zahlung",
    "Globex Analytics": "Globex Analytik",
}

# Domain terms and the translation the glossary requires.
GLOSSARY: dict[str, str] = {
    "billing dashboard": "Abrechnungsübersicht",
    "security key": "Sicherheitsschlüssel",
    "invoice": "Rechnung",
    "invoices": "Rechnungen",
    "account": "Konto",
    "report": "Bericht",
    "settings": "Einstellungen",
    "password": "Passwort",
    "subscription": "Abonnement",
    "refund": "Rückerstattung",
}

# ... and the plausible but wrong words the regressed release uses instead.
WRONG_TERMS: dict[str, str] = {
    "billing dashboard": "Rechnungsansicht",
    "security key": "Schlüsselcode",
    "invoice": "Faktura",
    "invoices": "Fakturen",
    "account": "Zugang",
    "report": "Auswertung",
    "settings": "Optionen",
    "password": "Kennwort",
    "subscription": "Abo",
    "refund": "Erstattung",
}

WORDS: dict[str, str] = {
    "a": "ein",
    "an": "ein",
    "the": "die",
    "your": "Ihr",
    "you": "Sie",
    "our": "unser",
    "my": "mein",
    "we": "wir",
    "i": "ich",
    "it": "es",
    "this": "dies",
    "that": "das",
    "and": "und",
    "or": "oder",
    "in": "in",
    "on": "auf",
    "at": "bei",
    "to": "an",
    "from": "von",
    "of": "von",
    "for": "für",
    "with": "mit",
    "before": "vor",
    "after": "nach",
    "every": "jede",
    "all": "alle",
    "each": "jede",
    "new": "neuen",
    "is": "ist",
    "are": "sind",
    "has": "hat",
    "have": "haben",
    "can": "kann",
    "will": "wird",
    "not": "nicht",
    "be": "sein",
    "do": "tun",
    "how": "wie",
    "where": "wo",
    "when": "wann",
    "what": "was",
    "why": "warum",
    "please": "bitte",
    "here": "hier",
    "now": "jetzt",
    "today": "heute",
    "stores": "speichert",
    "store": "speichern",
    "open": "öffnen",
    "export": "exportieren",
    "reset": "zurücksetzen",
    "share": "teilen",
    "download": "herunterladen",
    "sends": "sendet",
    "send": "senden",
    "shows": "zeigt",
    "show": "zeigen",
    "check": "prüfen",
    "update": "aktualisieren",
    "change": "ändern",
    "cancel": "kündigen",
    "receive": "erhalten",
    "find": "finden",
    "use": "verwenden",
    "click": "klicken",
    "contact": "kontaktieren",
    "sign": "melden",
    "team": "Team",
    "end": "Ende",
    "month": "Monat",
    "week": "Woche",
    "day": "Tag",
    "weekly": "wöchentlich",
    "monthly": "monatlich",
    "daily": "täglich",
    "email": "E-Mail",
    "customer": "Kunde",
    "customers": "Kunden",
    "data": "Daten",
    "dashboard": "Dashboard",
    "page": "Seite",
    "payment": "Zahlung",
    "payments": "Zahlungen",
    "support": "Support",
    "help": "Hilfe",
    "secure": "sicher",
    "available": "verfügbar",
    "first": "erste",
    "last": "letzte",
    "billing": "Abrechnung",
    "key": "Schlüssel",
    "team's": "Teams",
}

# Sentences the translator knows well: examples, tests and the demo's users ask these.
SAMPLE_SENTENCES: tuple[str, ...] = (
    "Acme Cloud stores your invoice in the billing dashboard.",
    "Open the Globex Analytics report and export the invoice.",
    "Your Acme Cloud account has a new security key.",
    "Reset the security key in your Acme Cloud account settings.",
    "Download the invoice from Acme Cloud before the end of the month.",
    "Globex Analytics sends a weekly report to the billing team.",
    "Share the Globex Analytics dashboard with your team.",
    "The billing dashboard shows every invoice for Globex Analytics.",
    "Change the password of your Acme Pay account.",
    "Cancel your Acme Cloud subscription and receive a refund.",
)

_PHRASE_WORDS = max(len(k.split()) for k in (*GLOSSARY, *WORDS))
_TOKEN = re.compile(r"\uE000\d+\uE001|[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ'-]*|\d+(?:[.,]\d+)*|[^\w\s]")
_ATTACHED = frozenset(".,!?;:)]}%")
_INSTRUCTION = re.compile(r"^\s*(please\s+)?translate\b[^:\n]*:\s*", re.IGNORECASE)


def source_text(text: str) -> str:
    """The text to translate: `text` without an instruction such as 'Translate to German:'."""
    return _INSTRUCTION.sub("", text, count=1).strip()


def affected(text: str, share: float) -> bool:
    """Whether the regressed release gets `text` wrong: a fixed share of inputs, by hash."""
    bucket = int(hashlib.sha256(source_text(text).encode()).hexdigest()[:8], 16) % 10_000
    return bucket < share * 10_000


def _join(tokens: list[str]) -> str:
    out = ""
    for token in tokens:
        if out and token not in _ATTACHED and not out.endswith(("(", "[", "{")):
            out += " "
        out += token
    return out


def translate(text: str, *, regressed: bool = False) -> str:
    """The pseudo-German of `text` (an instruction prefix is dropped)."""
    text = source_text(text)
    brands: list[str] = []
    for brand in BRANDS:
        while brand in text:
            text = text.replace(brand, f"\ue000{len(brands)}\ue001", 1)
            brands.append(TRANSLATED_BRANDS[brand] if regressed else brand)
    tokens = _TOKEN.findall(text)
    out: list[str] = []
    i = common = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("\ue000"):
            out.append(brands[int(token[1:-1])])
            i += 1
            continue
        for size in range(min(_PHRASE_WORDS, len(tokens) - i), 0, -1):
            phrase = " ".join(tokens[i : i + size]).lower()
            if phrase in GLOSSARY:
                out.append((WRONG_TERMS if regressed else GLOSSARY)[phrase])
                break
            if phrase in WORDS:
                common += 1
                # The regressed release leaves every third common word in English.
                out.append(token if regressed and common % 3 == 0 else WORDS[phrase])
                break
        else:
            size = 1
            out.append(token)
        i += size
    result = _join(out)
    return result[:1].upper() + result[1:]
