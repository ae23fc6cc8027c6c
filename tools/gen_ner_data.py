#!/usr/bin/env python3
"""Makes the NER sample's corpus and word vectors (samples/ner/data/); Python 3 only.

    python3 tools/gen_ner_data.py [--out samples/ner/data]

Writes, deterministically (fixed seed):
  train.txt, test.txt  CoNLL style: "token TAG" per line, a blank line between sentences,
                       BIO tags for PER, LOC and ORG.
  vectors.txt          GloVe text format ("word v1 ... v32" per line, no header): every corpus
                       word and some extra words. Synthetic: each word's vector is its class's
                       centre plus noise, so that person, location and organisation names
                       cluster the way pretrained vectors make them cluster.

Sentences come from templates (news-like, with slots for people, places, organisations,
numbers and days). A quarter of the names of each kind appear only in the test part, and
test sentences draw half their names from that quarter, so the held-out part holds names
and combinations the tagger never saw in training: only their vectors tell what they are.
Everything here is made up for Kiln and carries Kiln's license.
"""
import argparse
import os
import random

DIM = 32
SEED = 20260412
N_TRAIN, N_TEST = 400, 160
MAX_LEN = 16          # the longest sentence must fit the sample model's 16 steps

FIRST = """Anna Maria Elena Sofia Laura Julia Clara Nora Alice Emma Olivia Grace Hannah Lucy Sara
Marta Irene Rosa Ines Vera Amara Leila Yara Mina Zoe Ada Iris Lena Mira Tara David Marco Peter
Thomas Daniel James Lukas Paul Adam Victor Oscar Hugo Felix Ivan Omar Samuel Leon Tomas Mateo
Rafael Kofi Arjun Kenji Emil Jonas Nikolai Sami Diego Bruno Anton""".split()
LAST = """Novak Garcia Rossi Muller Silva Kowalski Petrov Jensen Moreau Fischer Tanaka Okafor
Haddad Lindqvist Costa Meyer Dubois Horvat Nielsen Santos Varga Brennan Castell Ortega Weber
Keller Larsen Marek Sato Chen Patel Mensah Adeyemi Ivanova Rahman Nakamura Kruger Alvarez
Bianchi Duarte Eriksen Fontaine Gallo Herrera Iqbal Janssen Kovac Lucero Moretti Navarro""".split()
CITY = """Paris Berlin Madrid Lisbon Rome Vienna Prague Warsaw Oslo Dublin Cairo Nairobi Lagos Accra
Tokyo Seoul Lima Quito Bogota Santiago Toronto Chicago Boston Denver Sydney Perth Mumbai Delhi
Jakarta Manila Athens Zurich Geneva Munich Hamburg Lyon Porto Seville Krakow Riga Tallinn Helsinki
Brazil Kenya Norway Canada Peru Chile Japan Egypt Spain Portugal Ghana Vietnam""".split()
CITY_MULTI = ["New York", "Buenos Aires", "Cape Town", "San Diego", "Hong Kong", "Rio de Janeiro",
              "Los Angeles", "Mexico City", "New Delhi", "Abu Dhabi", "Kuala Lumpur", "South Africa",
              "New Zealand", "Sri Lanka", "Costa Rica", "Tel Aviv"]
ORG_NAME = """Veltrix Orbon Kestrel Halvard Nordlys Tessaro Quorvia Brightwater Ironleaf Solvane
Meridian Calyx Arvane Zentro Lumora Fennick Graystone Pelagia Corvid Altamira Borealis Cindral
Dunmore Exora Falkor Glenby Helix Istra Juniper Korvak Lodestar Marlow Nimbra Obsidia Praxon
Quillon Rivenna Stratos Tovana Umbria""".split()
ORG_SUFFIX = "Corp Group Bank Systems Airlines Institute Motors Foods Energy Labs Partners Media".split()
ORG_FIXED = ["United Nations", "European Union", "World Health Organization", "Red Cross",
             "World Bank", "Interpol", "UNICEF", "NATO"]
NUMS = "2 3 4 5 7 8 10 12 15 20 25 30 40 50 100 2019 2020 2021 2022".split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November December".split()

# Slots: {P} a person (first and last name, or one of them), {L} a location, {O} an
# organisation, {T} a title word before a last name ({T} {PL}), {N} a number, {D} a day.
TEMPLATES = """{P} visited {L} last week .
{P} works for {O} in {L} .
The {O} office in {L} hired {P} .
{O} said on {D} that profits rose {N} percent .
According to {P} , the talks in {L} failed .
{P} and {P} met at the {O} headquarters .
Shares of {O} fell {N} percent on {D} .
She flew from {L} to {L} on {D} .
{T} {PL} will lead {O} from {M} .
{O} opened a new factory near {L} .
Police in {L} arrested {N} people on {D} .
{P} , a spokesman for {O} , declined to comment .
The minister met {P} in {L} .
{O} and {O} agreed to merge .
Heavy rain hit {L} and {L} on {D} .
{P} won the race in {L} in {N} .
{T} {PL} told reporters in {L} that {O} would grow .
{O} will cut {N} jobs in {L} .
Fans in {L} cheered for {P} .
The report by {O} praised {L} .
{P} joined {O} in {M} {N} .
{P} said the deal with {O} was signed in {L} .
Talks between {O} and {L} resumed on {D} .
{P} was born in {L} .
{P} lives in {L} with her family .
He moved to {L} after leaving {O} .
{O} appointed {P} as chief executive .
The mayor of {L} thanked {P} .
{P} criticised {O} on {D} .
Flights from {L} were delayed by {N} hours .
{O} reported a loss of {N} million .
In {L} , {P} opened a small bakery .
{T} {PL} arrived in {L} on {D} .
Officials from {O} visited {L} in {M} .
{P} beat {P} in the final .
Workers at {O} in {L} went on strike .
The {O} team signed {P} for {N} years .
{P} sold her stake in {O} .
Tourists returned to {L} this {M} .
The court in {L} fined {O} on {D} .""".splitlines()

# Non-entity words by kind, for their vectors (each kind has a centre of its own).
KIND_OF_WORD = {
    "title": "Mr. Mrs. Dr. Professor President Minister".split(),
    "time": DAYS + MONTHS + "week year hours years million percent".split(),
    "number": NUMS,
    "punct": ". , ;".split(),
}
EXTRA = {   # words in the vectors but not in the corpus
    "first": "Bianca Chiara Dalia Eva Fiona Gemma Helga Ilse Jana Katja Ravi Sven Teo Ugo Wim Yusuf".split(),
    "last": "Acosta Bauer Cruz Diaz Engel Falk Grant Hoffman Ito Jovanovic Klein Lopez".split(),
    "loc": "Bergen Malaga Nice Turin Basel Leeds Osaka Kyoto Busan Lhasa Dakar Tunis".split(),
    "org_name": "Aldera Brisko Cormant Delvan Estrix Fyord Gantry Hollis".split(),
    "other": ("river mountain kitchen yellow quickly apple music window garden table winter "
              "happy slowly paper bridge letter doctor student").split(),
}


def person(rng, firsts, lasts):
    r = rng.random()
    if r < 0.6:
        return [(rng.choice(firsts), "B-PER"), (rng.choice(lasts), "I-PER")]
    if r < 0.8:
        return [(rng.choice(firsts), "B-PER")]
    return [(rng.choice(lasts), "B-PER")]


def spans(words, kind):
    return [[(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(name.split())] for name in words]


def organisation(rng, names, fixed):
    if rng.random() < 0.2:
        return list(rng.choice(fixed))
    toks = [(rng.choice(names), "B-ORG")]
    if rng.random() < 0.75:
        toks.append((rng.choice(ORG_SUFFIX), "I-ORG"))
    return toks


def split_pool(rng, items, held_out=0.25):
    items = list(items)
    rng.shuffle(items)
    k = max(1, int(round(len(items) * held_out)))
    return items[k:], items[:k]          # (train, test-only)


def sentence(rng, template, pools):
    """pools: kind -> (train names, test-only names, probability of drawing a test-only one)."""
    def pick(kind):
        seen, unseen, p = pools[kind]
        return unseen if unseen and rng.random() < p else seen

    out = []
    for tok in template.split():
        if tok == "{P}":
            out += person(rng, pick("first"), pick("last"))
        elif tok == "{PL}":
            out.append((rng.choice(pick("last")), "B-PER"))
        elif tok == "{L}":
            out += list(rng.choice(pick("loc")))
        elif tok == "{O}":
            out += organisation(rng, pick("org_name"), pick("org_fixed"))
        elif tok == "{T}":
            out.append((rng.choice(KIND_OF_WORD["title"]), "O"))
        elif tok == "{N}":
            out.append((rng.choice(NUMS), "O"))
        elif tok == "{D}":
            out.append((rng.choice(DAYS), "O"))
        elif tok == "{M}":
            out.append((rng.choice(MONTHS), "O"))
        else:
            out.append((tok, "O"))
    return out


def make_corpus(rng):
    pools_train, pools_test = {}, {}
    kinds = {"first": FIRST, "last": LAST, "loc": spans(CITY + CITY_MULTI, "LOC"),
             "org_name": ORG_NAME, "org_fixed": spans(ORG_FIXED, "ORG")}
    for kind, items in kinds.items():
        seen, unseen = split_pool(rng, items)
        pools_train[kind] = (seen, [], 0.0)
        pools_test[kind] = (seen, unseen, 0.5)
    train = [sentence(rng, rng.choice(TEMPLATES), pools_train) for _ in range(N_TRAIN)]
    test = [sentence(rng, rng.choice(TEMPLATES), pools_test) for _ in range(N_TEST)]
    return train, test


def vectors(rng, corpus_words):
    """word -> vector: class centre + noise. People's first and last names share a person
    centre (plus one of their own); the words of multi-word places and organisations take
    their class's centre; other words get a centre per kind, or none."""
    def unit():
        v = [rng.gauss(0.0, 1.0) for _ in range(DIM)]
        norm = sum(x * x for x in v) ** 0.5
        return [x / norm for x in v]

    person, loc, org, org_suffix = unit(), unit(), unit(), unit()
    first_c, last_c = unit(), unit()
    centre = {
        "first": [p + 0.5 * f for p, f in zip(person, first_c)],
        "last": [p + 0.5 * s for p, s in zip(person, last_c)],
        "loc": loc,
        "org_name": org,
        "org_suffix": [o + 0.7 * s for o, s in zip(org, org_suffix)],
    }
    for kind in KIND_OF_WORD:
        centre[kind] = unit()
    kind_of = {}
    for w in FIRST + EXTRA["first"]:
        kind_of[w] = "first"
    for w in LAST + EXTRA["last"]:
        kind_of[w] = "last"
    for name in CITY + CITY_MULTI + EXTRA["loc"]:
        for w in name.split():
            kind_of.setdefault(w, "loc")
    for name in ORG_NAME + EXTRA["org_name"] + ORG_FIXED:
        for w in name.split():
            kind_of.setdefault(w, "org_name")
    for w in ORG_SUFFIX:
        kind_of[w] = "org_suffix"
    for kind, words in KIND_OF_WORD.items():
        for w in words:
            kind_of.setdefault(w, kind)

    words = sorted(set(corpus_words) | set(kind_of) | set(EXTRA["other"]))
    rng.shuffle(words)   # a vector file is not sorted by class
    table = []
    for w in words:
        c = centre.get(kind_of.get(w))
        noise = [rng.gauss(0.0, 0.12) for _ in range(DIM)]
        if c is None:    # an ordinary word: a direction of its own
            c = [x * 0.8 for x in unit()]
        table.append((w, [a + b for a, b in zip(c, noise)]))
    return table


def write_conll(path, sentences):
    with open(path, "w") as f:
        for s in sentences:
            for w, t in s:
                f.write("%s %s\n" % (w, t))
            f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "samples", "ner", "data"))
    a = ap.parse_args()
    rng = random.Random(SEED)
    train, test = make_corpus(rng)
    longest = max(len(s) for s in train + test)
    assert longest <= MAX_LEN, "a sentence of %d tokens does not fit %d steps" % (longest, MAX_LEN)
    corpus_words = {w for s in train + test for w, _ in s}
    table = vectors(rng, corpus_words)
    missing = corpus_words - {w for w, _ in table}
    assert not missing, "corpus words without a vector: %s" % sorted(missing)
    os.makedirs(a.out, exist_ok=True)
    write_conll(os.path.join(a.out, "train.txt"), train)
    write_conll(os.path.join(a.out, "test.txt"), test)
    with open(os.path.join(a.out, "vectors.txt"), "w") as f:
        for w, v in table:
            f.write(w + " " + " ".join("%.5f" % x for x in v) + "\n")
    train_words = {w for s in train for w, _ in s}
    test_ents = [w for s in test for w, t in s if t != "O"]
    unseen = sum(w not in train_words for w in test_ents)
    print("train %d sentences, test %d (longest %d tokens); %d vectors of %d dims; "
          "%d of the test's %d entity tokens never occur in train"
          % (len(train), len(test), longest, len(table), DIM, unseen, len(test_ents)))


if __name__ == "__main__":
    main()
