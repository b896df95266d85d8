"""Writes reviews.csv beside this file: 1,500 short synthetic product
reviews, half `positive` and half `negative`, for specs/text_sentiment.nn.

Each review is 6 to 40 words: neutral filler drawn from a few hundred words
(some of them rare, so that a vocabulary limit leaves them unknown), 1 to 3
words of its own sentiment, and with probability 0.35 one word of the
other (a "but the battery is awful" in a good review), with capitals and
punctuation as people write them. Run: python specs/data/make_reviews.py"""
import csv
from pathlib import Path

import numpy as np

POSITIVE = ("great excellent good love loved wonderful perfect amazing happy recommend best "
            "fantastic reliable solid pleasant brilliant superb delighted enjoy nice").split()
NEGATIVE = ("bad terrible awful hate hated poor broken worst disappointed useless cheap "
            "horrible refund flimsy annoying faulty waste returned junk mediocre").split()
FILLER = ("the a an this that it is was were be and or but with for of to in on at my our "
          "their its after before when then very quite really so too just still also "
          "product item order delivery box package price size colour color battery screen "
          "button cable charger case lid handle strap wheel motor fan lamp kettle blender "
          "toaster mixer speaker headphones keyboard mouse chair desk shelf drawer bag bottle "
          "phone tablet watch camera lens tripod printer router bulb plug socket fridge oven "
          "week weeks month months day days year time times hour morning evening night "
          "arrived came works worked used using bought ordered tried opened kept gave "
          "wife husband son daughter friend office kitchen garden car home work travel "
          "first second third last next other same new old small large big little long short "
          "light heavy quiet loud fast slow hot cold blue black white red green grey silver "
          "i we you he she they me us them one two three four five few many some any every "
          "about around again already always never maybe probably overall honestly").split()
RARE = [f"{a}{b}" for a in ("zor", "quib", "flan", "mirt", "trelk", "vosh", "plim", "drax")
        for b in ("a", "o", "um", "ex", "ix", "ton")]          # 48 words, a few uses each
PUNCT = [".", ",", "!", "?", ";"]


def review(rng, positive: bool) -> str:
    own, other = (POSITIVE, NEGATIVE) if positive else (NEGATIVE, POSITIVE)
    n = int(rng.integers(6, 41))
    words = list(rng.choice(FILLER, n))
    if rng.random() < 0.15:
        words[int(rng.integers(n))] = str(rng.choice(RARE))
    marks = list(rng.choice(own, int(rng.integers(1, 4))))
    if rng.random() < 0.35:
        marks.append(str(rng.choice(other)))
    for w in marks:
        words.insert(int(rng.integers(len(words) + 1)), str(w))
    out = []
    for i, w in enumerate(words):
        if i == 0 or rng.random() < 0.05:
            w = w.capitalize()
        if rng.random() < 0.08:
            w += str(rng.choice(PUNCT))
        out.append(w)
    return " ".join(out) + str(rng.choice(PUNCT[:3]))


def main(path=Path(__file__).with_name("reviews.csv"), n=1500, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array(["positive"] * (n // 2) + ["negative"] * (n - n // 2))
    rng.shuffle(labels)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review", "label"])
        for label in labels:
            w.writerow([review(rng, label == "positive"), label])


if __name__ == "__main__":
    main()
