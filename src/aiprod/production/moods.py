"""A music mood from the topic, when the request leaves it to us (``music: "auto"``).

A small offline keyword table (English, with the commonest French, Spanish and
German words): the first mood whose words the text uses most wins, and a text
that names none gets "uplifting", the mood explainers use most.  The chosen
mood is written into the stored request, so the user sees what was picked.
"""

from __future__ import annotations

import re

from aiprod.production.models import MusicMood

_MOODS: dict[MusicMood, frozenset[str]] = {
    "calm": frozenset(
        """sleep sleeping bedtime relax relaxing calm rest meditation meditate breathe
        breathing yoga mindfulness quiet peaceful night garden nature forest rain tea
        spa slow gentle sommeil dormir calme détente sueño dormir tranquilo schlaf
        schlafen ruhe entspannung""".split()
    ),
    "dramatic": frozenset(
        """history war battle empire revolution storm volcano earthquake disaster
        epic mystery ancient legend survival rescue histoire guerre historia guerra
        geschichte krieg""".split()
    ),
    "corporate": frozenset(
        """business company product service customers customer sales marketing
        finance budget invest investing investment money startup team office meeting
        software platform data report quarterly strategy entreprise produit empresa
        producto unternehmen produkt""".split()
    ),
    "playful": frozenset(
        """kids children child fun game games play playful pet pets cat cats dog dogs
        puppy toy toys party cake cooking recipe recipes snack candy enfants jeu
        niños juego kinder spiel""".split()
    ),
    "dark": frozenset(
        """horror crime murder ghost haunted fear scary danger dark villain poison
        crimen miedo verbrechen angst""".split()
    ),
}
_WORD = re.compile(r"[\w'’]+", re.UNICODE)


def mood_for(text: str) -> MusicMood:
    """The mood whose keywords `text` uses most (ties: the table's order)."""
    words = [w.lower() for w in _WORD.findall(text)]
    best: MusicMood = "uplifting"
    best_count = 0
    for mood, keys in _MOODS.items():
        count = sum(w in keys for w in words)
        if count > best_count:
            best, best_count = mood, count
    return best
