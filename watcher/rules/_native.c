/* The rule matcher's hot path in C: fold and split an entry's fields into words, find the
 * compiled phrases among them, evaluate the candidate rules and build their hits.
 *
 * Everything it knows comes from tables that watcher/rules/native.py builds from the
 * Python matcher's own compilation (the same phrases, events and expression trees), so the
 * two engines cannot disagree on what a rule says; tests/test_native_matcher.py checks
 * that they agree on what an entry contains. An entry with a character these tables cannot
 * fold one by one (a combining mark NFKC may move or compose, Hangul, a letter beyond the
 * BMP; emoji are separators) is answered None: the Python engine matches it.
 *
 * Nothing here is global or mutable after construction, and every per-entry buffer is
 * allocated per call: match() may run in any thread. The tables are checked once, when the
 * engine is built, so that no index read at match time can fall outside its array.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* char_table entries: a word character is (offset << 3 | length) of what it folds to in
 * fold_pool, or (code point << 3 | 1) if it folds to one character */
#define CH_COMPLEX (-1)   /* cannot be folded alone: the entry goes to the Python engine */
#define CH_SEPARATOR (-2) /* ends a word */
#define CH_IGNORABLE (-3) /* inside a word, nothing; elsewhere, a separator */

enum { NODE_ATOM = 0, NODE_NOT = 1, NODE_ALL = 2, NODE_ANY = 3, NODE_NEAR = 4 };
enum { FILTER_FEEDS = 1, FILTER_LANGUAGES = 2 };

/* What the tables mean, raised whenever that changes: watcher/rules/native.py goes without
 * a module of another version (an in-place build not redone after an update). */
#define ENGINE_VERSION 3

#define CP_BITS 21
#define MAX_DEPTH 200

/* ---------------------------------------------------------------------------------------
 * growable arrays
 */

typedef struct {
    void *data;
    Py_ssize_t size, capacity, item;
} Vec;

static void vec_init(Vec *v, Py_ssize_t item) {
    v->data = NULL;
    v->size = v->capacity = 0;
    v->item = item;
}

static void vec_free(Vec *v) {
    PyMem_Free(v->data);
    v->data = NULL;
    v->size = v->capacity = 0;
}

/* A pointer to a new item at the end, or NULL (MemoryError set). */
static void *vec_push(Vec *v) {
    if (v->size == v->capacity) {
        Py_ssize_t capacity = v->capacity ? v->capacity * 2 : 32;
        void *data = PyMem_Realloc(v->data, (size_t)(capacity * v->item));
        if (data == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        v->data = data;
        v->capacity = capacity;
    }
    return (char *)v->data + v->item * v->size++;
}

/* ---------------------------------------------------------------------------------------
 * the engine: its tables
 */

typedef struct {
    const int32_t *data;
    Py_ssize_t size;
} Ints;

/* An open-addressing hash table from non-zero 64-bit keys to int32 values. */
typedef struct {
    uint64_t key; /* 0: empty */
    int32_t value;
} Slot;

typedef struct {
    Slot *slots;
    uint64_t mask;
} Table;

typedef struct {
    PyObject_HEAD
    PyObject *owned;  /* the tuple of table bytes objects (kept alive: pointers into them) */
    Ints char_table;  /* 65536 entries */
    const uint32_t *fold_pool;
    Py_ssize_t fold_pool_size;
    /* beyond the BMP: the first code point of a range whose classes are given (no word
     * character folds there: they are CH_COMPLEX), CH_COMPLEX elsewhere */
    Py_UCS4 astral_first;
    Ints astral;
    /* the trie of folded forms and prefixes: an open-addressing table (node, code point)
     * → child, and per node the form and the prefix it spells (or -1) */
    Table trie; /* ((node << CP_BITS) | cp) + 1 → child node */
    /* char_table in blocks of 256, deduplicated, so that the few a text uses stay in the
     * cache: blocks[block_of[ch >> 8] * 256 + (ch & 255)] */
    uint16_t block_of[256];
    int32_t *blocks;
    int32_t *root_children; /* the root's children by BMP code point: most lookups */
    Ints node_form, node_prefix;
    /* Phrases by the words that can start them. A word's *atoms* are its form (its id)
     * and its prefixes (forms + prefix id). One-word phrases by atom; longer ones by the
     * atoms of their first two words, in a hash table (first, second) → phrase list. */
    int32_t forms, prefixes;
    Ints single_start, single;
    Table pairs; /* ((first << 32) | second) + 1 → index into pair_start */
    Ints pair_start, pair_phrases;
    /* each phrase's words: a prefix id, or (if -1) a sorted set of form ids */
    Ints phrase_words_start, word_prefix, word_forms_start, word_forms;
    /* the events an occurrence of a phrase is, per field: index phrase * 2 + field */
    Ints phrase_events_start, phrase_events;
    /* the rules that one of these events can make true (ascending: hit order) */
    Ints event_rules_start, event_rules;
    /* expression nodes; atoms hold sorted event ids, ALL/ANY child node ids */
    Ints node_kind, node_a, node_b, node_c, node_pool;
    /* rules in hit order */
    Ints rule_root, rule_filter, rule_feeds_start, rule_feeds, rule_languages_start,
        rule_languages;
    PyObject *names;  /* tuple of str, by rule */
    PyObject *fields; /* ("title", "summary") */
    PyObject *span_type, *hit_type;
    /* the slots of Span (field, start, end, text) and Hit (rule, spans), set directly
     * when that builds objects equal to calling the classes (checked at construction) */
    PyObject *span_slots[4], *hit_slots[2];
    Py_ssize_t events;
} Engine;

static inline uint64_t slot_of(const Table *t, uint64_t key) {
    return (key * UINT64_C(0x9E3779B97F4A7C15)) >> 20 & t->mask;
}

/* The value of `key`, or -1. */
static inline int32_t table_get(const Table *t, uint64_t key) {
    for (uint64_t slot = slot_of(t, key);; slot = (slot + 1) & t->mask) {
        if (t->slots[slot].key == key)
            return t->slots[slot].value;
        if (t->slots[slot].key == 0)
            return -1;
    }
}

/* An empty table for `count` keys, at most half full. */
static int table_init(Table *t, Py_ssize_t count) {
    uint64_t size = 1024;
    while (size < (uint64_t)count * 2)
        size *= 2;
    t->slots = PyMem_Calloc(size, sizeof(Slot));
    if (t->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    t->mask = size - 1;
    return 0;
}

/* Add a key not there yet (-1, ValueError set, if it is: `what` is given twice). */
static int table_put(Table *t, uint64_t key, int32_t value, const char *what) {
    uint64_t slot = slot_of(t, key);
    for (; t->slots[slot].key != 0; slot = (slot + 1) & t->mask)
        if (t->slots[slot].key == key) {
            PyErr_Format(PyExc_ValueError, "native matcher tables: %s given twice", what);
            return -1;
        }
    t->slots[slot].key = key;
    t->slots[slot].value = value;
    return 0;
}

static inline int32_t trie_child(const Engine *e, int32_t node, uint32_t cp) {
    if (node == 0 && cp < 0x10000)
        return e->root_children[cp];
    return table_get(&e->trie, (((uint64_t)node << CP_BITS) | cp) + 1);
}

/* ---------------------------------------------------------------------------------------
 * one entry: its words, the phrases found among them, the rules they make true
 */

typedef struct {
    int field;
    Py_ssize_t start, end; /* offsets in the field's displayed text */
    int32_t form;          /* form id of the whole folded word, or -1 */
    Py_ssize_t prefixes, prefix_count; /* into Scan.prefixes */
} Word;

typedef struct {
    int32_t field;
    Py_ssize_t first, last; /* word indexes (inclusive) */
} Place;

typedef struct {
    int32_t event;
    Place place;
} Occurrence;

typedef struct {
    int32_t event;
    Py_ssize_t begin, end; /* its occurrences in Scan.found */
} EventRange;

typedef struct {
    const Engine *e;
    Vec words;     /* Word */
    Vec prefixes;  /* int32_t */
    Vec found;     /* Occurrence, sorted by (event, field, first, last) once scanned */
    Vec events;    /* EventRange: the distinct events that occurred, ascending */
    Vec collected; /* Place: where the rule being evaluated has its terms */
} Scan;

static void scan_free(Scan *s) {
    vec_free(&s->words);
    vec_free(&s->prefixes);
    vec_free(&s->found);
    vec_free(&s->events);
    vec_free(&s->collected);
}

static int add_prefix(Scan *s, int32_t prefix) {
    int32_t *p = vec_push(&s->prefixes);
    if (p == NULL)
        return -1;
    *p = prefix;
    return 0;
}

/* Keep the word that ended: text[start:end], `folded` characters long, its walk in the
 * trie ended at `node` (-1: it left the trie), its prefixes from `prefixes` on. */
static int end_word(Scan *s, int field, Py_ssize_t start, Py_ssize_t end, Py_ssize_t folded,
                    int32_t node, Py_ssize_t prefixes) {
    if (folded == 0) { /* folds to nothing: no word */
        s->prefixes.size = prefixes;
        return 0;
    }
    Word *word = vec_push(&s->words);
    if (word == NULL)
        return -1;
    word->field = field;
    word->start = start;
    word->end = end;
    word->form = node >= 0 ? s->e->node_form.data[node] : -1;
    word->prefixes = prefixes;
    word->prefix_count = s->prefixes.size - prefixes;
    return 0;
}

static int32_t astral_class(const Engine *e, Py_UCS4 ch) {
    if (ch < e->astral_first || ch - e->astral_first >= (Py_UCS4)e->astral.size)
        return CH_COMPLEX;
    return e->astral.data[ch - e->astral_first];
}

/* The class of a character (see char_table): Latin-1 text needs only the first block. */
#define CLASS_OF(ch)                                                                          \
    (kind == PyUnicode_1BYTE_KIND                ? latin1[ch]                                \
     : kind == PyUnicode_4BYTE_KIND && (ch) > 0xFFFF ? astral_class(e, ch)                   \
                                                 : blocks[(Py_ssize_t)block_of[(ch) >> 8] << 8 | ((ch) & 255)])

/* Split one field into folded words, walking each word's folded characters through the
 * trie as they come, for one string kind (inlined per kind). The state of the word being
 * read lives in locals, so that it stays in registers. Returns 1 if a character cannot be
 * folded alone, -1 on error, 0 otherwise. */
static inline __attribute__((always_inline)) int split_kind(Scan *s, const void *data,
                                                             int kind, Py_ssize_t length,
                                                             int field) {
    const Engine *e = s->e;
    const uint16_t *block_of = e->block_of;
    const int32_t *blocks = e->blocks;
    const int32_t *latin1 = blocks + ((Py_ssize_t)block_of[0] << 8);
    const uint32_t *pool = e->fold_pool;
    const int32_t *node_prefix = e->node_prefix.data;
    Py_ssize_t i = 0;
    while (i < length) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        int32_t cls = CLASS_OF(ch);
        if (cls < 0) { /* outside words, separators and ignorables are nothing */
            if (cls == CH_COMPLEX)
                return 1;
            i++;
            continue;
        }
        /* a word: its characters, and ignorables between them */
        Py_ssize_t start = i, end = i, folded = 0, prefixes = s->prefixes.size;
        int32_t node = 0;
        uint32_t previous = 0;
        if (node_prefix[0] >= 0 && add_prefix(s, node_prefix[0]) < 0)
            return -1;
        for (;;) {
            int32_t size = cls & 7;
            uint32_t one = (uint32_t)cls >> 3; /* a character folding to one is inline */
            const uint32_t *image = size == 1 ? &one : pool + (cls >> 3);
            for (int32_t k = 0; k < size; k++) {
                uint32_t cp = image[k];
                /* Armenian: "եւ" is "եվ" (as watcher.text.fold) */
                if (cp == 0x582 && previous == 0x565)
                    cp = 0x57E;
                previous = cp;
                if (node >= 0) {
                    node = trie_child(e, node, cp);
                    if (node >= 0 && node_prefix[node] >= 0 &&
                        add_prefix(s, node_prefix[node]) < 0)
                        return -1;
                }
            }
            folded += size;
            end = ++i;
            do { /* the next character that is not an ignorable */
                if (i == length)
                    goto word_ends;
                ch = PyUnicode_READ(kind, data, i);
                cls = CLASS_OF(ch);
            } while (cls == CH_IGNORABLE && ++i);
            if (cls < 0)
                break;
        }
    word_ends:
        if (end_word(s, field, start, end, folded, node, prefixes) < 0)
            return -1;
        /* i is at a separator, a complex character or the end; the outer loop sees it */
    }
    return 0;
}

#undef CLASS_OF

static int split_field(Scan *s, PyObject *text, int field) {
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    switch (PyUnicode_KIND(text)) {
    case PyUnicode_1BYTE_KIND:
        return split_kind(s, data, PyUnicode_1BYTE_KIND, length, field);
    case PyUnicode_2BYTE_KIND:
        return split_kind(s, data, PyUnicode_2BYTE_KIND, length, field);
    default:
        return split_kind(s, data, PyUnicode_4BYTE_KIND, length, field);
    }
}

static int contains(const int32_t *sorted, Py_ssize_t size, int32_t value) {
    Py_ssize_t lo = 0, hi = size;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (sorted[mid] < value)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < size && sorted[lo] == value;
}

static int word_fits(const Scan *s, const Word *word, int32_t spec) {
    const Engine *e = s->e;
    int32_t prefix = e->word_prefix.data[spec];
    if (prefix >= 0) {
        const int32_t *ids = (const int32_t *)s->prefixes.data + word->prefixes;
        for (Py_ssize_t k = 0; k < word->prefix_count; k++)
            if (ids[k] == prefix)
                return 1;
        return 0;
    }
    if (word->form < 0)
        return 0;
    int32_t lo = e->word_forms_start.data[spec], hi = e->word_forms_start.data[spec + 1];
    return contains(e->word_forms.data + lo, hi - lo, word->form);
}

/* Record the events of `phrase` occurring at words first..last. */
static int record(Scan *s, int32_t phrase, Py_ssize_t first, Py_ssize_t last) {
    const Engine *e = s->e;
    int field = ((const Word *)s->words.data)[first].field;
    int32_t index = phrase * 2 + field;
    for (int32_t k = e->phrase_events_start.data[index];
         k < e->phrase_events_start.data[index + 1]; k++) {
        Occurrence *o = vec_push(&s->found);
        if (o == NULL)
            return -1;
        o->event = e->phrase_events.data[k];
        o->place.field = field;
        o->place.first = first;
        o->place.last = last;
    }
    return 0;
}

/* Record `phrase` if it occurs from word `first` on, its first two words known to fit. */
static int try_phrase(Scan *s, int32_t phrase, Py_ssize_t first) {
    const Engine *e = s->e;
    const Word *words = (const Word *)s->words.data;
    int32_t lo = e->phrase_words_start.data[phrase], hi = e->phrase_words_start.data[phrase + 1];
    Py_ssize_t last = first + (hi - lo) - 1;
    if (last >= s->words.size || words[last].field != words[first].field)
        return 0;
    for (int32_t spec = lo + 2; spec < hi; spec++)
        if (!word_fits(s, &words[first + (spec - lo)], spec))
            return 0;
    return record(s, phrase, first, last);
}

/* The atoms of a word: its form, then its prefixes. Returns how many, or -1 if more than
 * `room`. */
static Py_ssize_t atoms_of(const Scan *s, const Word *word, int32_t *atoms, Py_ssize_t room) {
    Py_ssize_t count = 0;
    if (word->prefix_count + 1 > room)
        return -1;
    if (word->form >= 0)
        atoms[count++] = word->form;
    const int32_t *prefixes = (const int32_t *)s->prefixes.data + word->prefixes;
    for (Py_ssize_t k = 0; k < word->prefix_count; k++)
        atoms[count++] = s->e->forms + prefixes[k];
    return count;
}

static inline uint64_t pair_key(int32_t first, int32_t second) {
    return (((uint64_t)(uint32_t)first << 32) | (uint32_t)second) + 1;
}

static int place_order(const void *x, const void *y) {
    const Place *a = x, *b = y;
    if (a->field != b->field)
        return a->field < b->field ? -1 : 1;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    if (a->last != b->last)
        return a->last < b->last ? -1 : 1;
    return 0;
}

static int occurrence_order(const void *x, const void *y) {
    const Occurrence *a = x, *b = y;
    if (a->event != b->event)
        return a->event < b->event ? -1 : 1;
    return place_order(&a->place, &b->place);
}

/* A word has a form and the prefixes it starts with: a few (prefixes nest: "rus", "russ").
 * An entry with a word of more is left to the Python engine (it takes rules with that many
 * nested prefixes of one word). */
#define MAX_ATOMS 64

/* Find the phrases that occur. Returns 1 if the Python engine must match the entry, -1 on
 * error, 0 otherwise. */
static int find_phrases(Scan *s) {
    const Engine *e = s->e;
    int32_t atoms[MAX_ATOMS], next_atoms[MAX_ATOMS];
    Py_ssize_t count = 0, next_count = 0;
    const Word *words = (const Word *)s->words.data;
    if (s->words.size)
        next_count = atoms_of(s, &words[0], next_atoms, MAX_ATOMS);
    if (next_count < 0)
        return 1;
    for (Py_ssize_t i = 0; i < s->words.size; i++) {
        memcpy(atoms, next_atoms, (size_t)next_count * sizeof(int32_t));
        count = next_count;
        int paired = i + 1 < s->words.size && words[i + 1].field == words[i].field;
        next_count = i + 1 < s->words.size ? atoms_of(s, &words[i + 1], next_atoms, MAX_ATOMS) : 0;
        if (next_count < 0)
            return 1;
        for (Py_ssize_t a = 0; a < count; a++) {
            int32_t atom = atoms[a];
            for (int32_t k = e->single_start.data[atom]; k < e->single_start.data[atom + 1]; k++)
                if (record(s, e->single.data[k], i, i) < 0)
                    return -1;
            if (!paired)
                continue;
            for (Py_ssize_t b = 0; b < next_count; b++) {
                int32_t pair = table_get(&e->pairs, pair_key(atom, next_atoms[b]));
                if (pair < 0)
                    continue;
                for (int32_t k = e->pair_start.data[pair]; k < e->pair_start.data[pair + 1]; k++)
                    if (try_phrase(s, e->pair_phrases.data[k], i) < 0)
                        return -1;
            }
        }
    }
    if (s->found.size > 1)
        qsort(s->found.data, (size_t)s->found.size, sizeof(Occurrence), occurrence_order);
    const Occurrence *found = (const Occurrence *)s->found.data;
    for (Py_ssize_t i = 0; i < s->found.size; i++) {
        if (i && found[i].event == found[i - 1].event) {
            ((EventRange *)s->events.data)[s->events.size - 1].end = i + 1;
            continue;
        }
        EventRange *event = vec_push(&s->events);
        if (event == NULL)
            return -1;
        event->event = found[i].event;
        event->begin = i;
        event->end = i + 1;
    }
    return 0;
}

/* The index of an event that occurred in s->events, or -1. */
static Py_ssize_t event_at(const Scan *s, int32_t event) {
    const EventRange *events = (const EventRange *)s->events.data;
    Py_ssize_t lo = 0, hi = s->events.size;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (events[mid].event < event)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->events.size && events[lo].event == event ? lo : -1;
}

/* ---------------------------------------------------------------------------------------
 * expressions
 */

static int add_places(const Scan *s, const EventRange *range, Vec *out) {
    const Occurrence *found = (const Occurrence *)s->found.data;
    for (Py_ssize_t k = range->begin; k < range->end; k++) {
        Place *place = vec_push(out);
        if (place == NULL)
            return -1;
        *place = found[k].place;
    }
    return 0;
}

/* The events of an atom that occurred: with `out`, their places are added to it (callers
 * sort and deduplicate); without, the first one found is enough. Returns whether one
 * occurred, or -1 on error. The smaller of the atom and the events that occurred is
 * walked, the other searched. */
static int atom_visit(const Scan *s, int32_t node, Vec *out) {
    const Engine *e = s->e;
    const int32_t *atom = e->node_pool.data + e->node_a.data[node];
    Py_ssize_t size = e->node_b.data[node];
    const EventRange *events = (const EventRange *)s->events.data;
    int occurred = 0;
    for (Py_ssize_t i = 0; i < (size > s->events.size ? s->events.size : size); i++) {
        Py_ssize_t at = i;
        if (size > s->events.size ? !contains(atom, size, events[i].event)
                                  : (at = event_at(s, atom[i])) < 0)
            continue;
        if (out == NULL)
            return 1;
        occurred = 1;
        if (add_places(s, &events[at], out) < 0)
            return -1;
    }
    return occurred;
}

static int atom_holds(const Scan *s, int32_t node) {
    return atom_visit(s, node, NULL);
}

static int atom_places(const Scan *s, int32_t node, Vec *out) {
    return atom_visit(s, node, out) < 0 ? -1 : 0;
}


/* Sort and deduplicate places [from, size) of a vector. */
static void unique_places(Vec *v, Py_ssize_t from) {
    Place *places = (Place *)v->data + from;
    Py_ssize_t count = v->size - from, kept = 0;
    if (count < 2)
        return;
    qsort(places, (size_t)count, sizeof(Place), place_order);
    for (Py_ssize_t i = 0; i < count; i++)
        if (kept == 0 || place_order(&places[kept - 1], &places[i]) != 0)
            places[kept++] = places[i];
    v->size = from + kept;
}

/* NEAR: pairs of an occurrence of each side in one field with at most `distance` words
 * between them, either order, two places rather than one twice. Word i0..i1 and j0..j1
 * are that near exactly when j0 <= i1 + d + 1 and i0 <= j1 + d + 1. With `collect`, the
 * places that are part of some pair are appended to s->collected; otherwise it stops at
 * the first pair. Returns 1 if a pair exists, 0 if none, -1 on error. */
static int near(Scan *s, int32_t node, int collect) {
    const Engine *e = s->e;
    Py_ssize_t reach = (Py_ssize_t)e->node_c.data[node] + 1;
    Vec left, right;
    vec_init(&left, sizeof(Place));
    vec_init(&right, sizeof(Place));
    char *used = NULL;
    int result = -1;
    if (atom_places(s, e->node_a.data[node], &left) < 0 ||
        atom_places(s, e->node_b.data[node], &right) < 0)
        goto done;
    unique_places(&left, 0);
    unique_places(&right, 0);
    const Place *a = left.data, *b = right.data;
    Py_ssize_t longest = 0;
    for (Py_ssize_t k = 0; k < right.size; k++)
        if (b[k].last - b[k].first > longest)
            longest = b[k].last - b[k].first;
    if (collect) {
        used = PyMem_Calloc((size_t)right.size + 1, 1);
        if (used == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    result = 0;
    for (Py_ssize_t i = 0; i < left.size; i++) {
        /* the first of b that can be near: by (field, first) */
        Py_ssize_t lo = 0, hi = right.size;
        Py_ssize_t lowest = a[i].first - reach - longest;
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (b[mid].field < a[i].field ||
                (b[mid].field == a[i].field && b[mid].first < lowest))
                lo = mid + 1;
            else
                hi = mid;
        }
        int paired = 0;
        for (Py_ssize_t k = lo; k < right.size && b[k].field == a[i].field &&
                                b[k].first <= a[i].last + reach;
             k++) {
            if (b[k].last < a[i].first - reach || place_order(&a[i], &b[k]) == 0)
                continue;
            result = 1;
            if (!collect)
                goto done;
            paired = 1;
            used[k] = 1;
        }
        if (paired) {
            Place *place = vec_push(&s->collected);
            if (place == NULL) {
                result = -1;
                goto done;
            }
            *place = a[i];
        }
    }
    if (collect)
        for (Py_ssize_t k = 0; k < right.size; k++)
            if (used[k]) {
                Place *place = vec_push(&s->collected);
                if (place == NULL) {
                    result = -1;
                    goto done;
                }
                *place = b[k];
            }
done:
    PyMem_Free(used);
    vec_free(&left);
    vec_free(&right);
    return result;
}

static int too_deep(int depth) {
    if (depth <= MAX_DEPTH)
        return 0;
    PyErr_SetString(PyExc_RecursionError, "rule expression nested too deeply");
    return 1;
}

/* Whether an expression holds. Returns 1, 0, or -1 on error. */
static int holds(Scan *s, int32_t node, int depth) {
    const Engine *e = s->e;
    if (too_deep(depth))
        return -1;
    switch (e->node_kind.data[node]) {
    case NODE_ATOM:
        return atom_holds(s, node);
    case NODE_NOT: {
        int child = holds(s, e->node_a.data[node], depth + 1);
        return child < 0 ? -1 : !child;
    }
    case NODE_ALL:
    case NODE_ANY: {
        int any = e->node_kind.data[node] == NODE_ANY;
        const int32_t *children = e->node_pool.data + e->node_a.data[node];
        for (int32_t k = 0; k < e->node_b.data[node]; k++) {
            int child = holds(s, children[k], depth + 1);
            if (child < 0)
                return -1;
            if (child == any)
                return any;
        }
        return !any;
    }
    default: /* NODE_NEAR */
        if (!atom_holds(s, e->node_a.data[node]) || !atom_holds(s, e->node_b.data[node]))
            return 0;
        return near(s, node, 0);
    }
}

/* The places of the terms that made a true expression true (as the Python engine's
 * collect(): all of an ALL, the true branches of an ANY, nothing under NOT, the paired
 * occurrences of a NEAR). */
static int collect(Scan *s, int32_t node, int depth) {
    const Engine *e = s->e;
    if (too_deep(depth))
        return -1;
    switch (e->node_kind.data[node]) {
    case NODE_ATOM:
        return atom_places(s, node, &s->collected) < 0 ? -1 : 0;
    case NODE_NOT:
        return 0;
    case NODE_ALL:
    case NODE_ANY: {
        int any = e->node_kind.data[node] == NODE_ANY;
        const int32_t *children = e->node_pool.data + e->node_a.data[node];
        for (int32_t k = 0; k < e->node_b.data[node]; k++) {
            if (any) {
                int child = holds(s, children[k], depth + 1);
                if (child < 0)
                    return -1;
                if (!child)
                    continue;
            }
            if (collect(s, children[k], depth + 1) < 0)
                return -1;
        }
        return 0;
    }
    default:
        return near(s, node, 1) < 0 ? -1 : 0;
    }
}

/* ---------------------------------------------------------------------------------------
 * hits
 */

typedef struct {
    int32_t field;
    Py_ssize_t start, end;
    PyObject *span;
} KnownSpan;

/* An instance of `type` with its slots set to `values`: what calling a frozen dataclass
 * without __post_init__ does, without running its __init__ in the interpreter (a third of
 * the time of a hit).
 * `slots` are NULL where the class is called instead. */
static PyObject *make(PyObject *type, PyObject *const *slots, PyObject *const *values,
                      Py_ssize_t count) {
    if (slots[0] == NULL)
        return PyObject_Vectorcall(type, values, (size_t)count, NULL);
    PyTypeObject *t = (PyTypeObject *)type;
    PyObject *empty = PyTuple_New(0);
    if (empty == NULL)
        return NULL;
    PyObject *made = t->tp_new(t, empty, NULL);
    Py_DECREF(empty);
    if (made == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < count; k++)
        if (Py_TYPE(slots[k])->tp_descr_set(slots[k], made, values[k]) < 0) {
            Py_DECREF(made);
            return NULL;
        }
    return made;
}

/* Spans shared among the rules hitting one entry: the first this many (a linear search,
 * and a huge entry's thousands of spans are rarely shared). */
#define KNOWN_SPANS 64

/* The spans of the places collected: displayed offsets, overlapping ones of a field
 * merged, in field order. Spans equal to one built for an earlier rule are shared. */
static PyObject *spans_of(Scan *s, PyObject *const texts[2], Vec *known) {
    const Engine *e = s->e;
    const Word *words = (const Word *)s->words.data;
    unique_places(&s->collected, 0);
    /* to displayed offsets, merging overlaps (places are in (field, first) order, which is
     * displayed order within a field) */
    Vec merged;
    vec_init(&merged, sizeof(KnownSpan));
    const Place *places = (const Place *)s->collected.data;
    for (Py_ssize_t i = 0; i < s->collected.size; i++) {
        Py_ssize_t start = words[places[i].first].start, end = words[places[i].last].end;
        KnownSpan *last = merged.size ? (KnownSpan *)merged.data + merged.size - 1 : NULL;
        if (last != NULL && last->field == places[i].field && start < last->end) {
            if (end > last->end)
                last->end = end;
            continue;
        }
        KnownSpan *next = vec_push(&merged);
        if (next == NULL) {
            vec_free(&merged);
            return NULL;
        }
        next->field = places[i].field;
        next->start = start;
        next->end = end;
        next->span = NULL;
    }
    PyObject *result = PyTuple_New(merged.size);
    if (result == NULL) {
        vec_free(&merged);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < merged.size; i++) {
        KnownSpan *want = (KnownSpan *)merged.data + i;
        PyObject *span = NULL;
        for (Py_ssize_t k = 0; k < known->size && k < KNOWN_SPANS; k++) {
            KnownSpan *have = (KnownSpan *)known->data + k;
            if (have->field == want->field && have->start == want->start &&
                have->end == want->end) {
                span = have->span;
                break;
            }
        }
        if (span == NULL) {
            PyObject *text = PyUnicode_Substring(texts[want->field], want->start, want->end);
            PyObject *start = PyLong_FromSsize_t(want->start);
            PyObject *end = PyLong_FromSsize_t(want->end);
            if (text != NULL && start != NULL && end != NULL) {
                PyObject *args[4] = {PyTuple_GET_ITEM(e->fields, want->field), start, end,
                                     text};
                span = make(e->span_type, e->span_slots, args, 4);
            }
            Py_XDECREF(text);
            Py_XDECREF(start);
            Py_XDECREF(end);
            if (span == NULL) {
                Py_DECREF(result);
                vec_free(&merged);
                return NULL;
            }
            if (known->size < KNOWN_SPANS) {
                KnownSpan *keep = vec_push(known);
                if (keep == NULL) {
                    Py_DECREF(span);
                    Py_DECREF(result);
                    vec_free(&merged);
                    return NULL;
                }
                *keep = *want;
                keep->span = Py_NewRef(span); /* the known list's own reference */
            }
        } else {
            Py_INCREF(span);
        }
        PyTuple_SET_ITEM(result, i, span); /* takes the reference */
    }
    vec_free(&merged);
    return result;
}

static int rule_takes(const Engine *e, int32_t rule, int32_t feed, int32_t language) {
    int32_t filter = e->rule_filter.data[rule];
    if (filter & FILTER_FEEDS) {
        int32_t lo = e->rule_feeds_start.data[rule], hi = e->rule_feeds_start.data[rule + 1];
        if (feed < 0 || !contains(e->rule_feeds.data + lo, hi - lo, feed))
            return 0;
    }
    if (filter & FILTER_LANGUAGES) {
        int32_t lo = e->rule_languages_start.data[rule];
        int32_t hi = e->rule_languages_start.data[rule + 1];
        if (language < 0 || !contains(e->rule_languages.data + lo, hi - lo, language))
            return 0;
    }
    return 1;
}

/* The hits of the rules that one of the events that occurred can make true, each rule
 * evaluated once, in hit order (the order of its bit in a bitmap over the rules). */
static PyObject *hits_of(Scan *s, PyObject *const texts[2], int32_t feed, int32_t language) {
    const Engine *e = s->e;
    Vec known;
    vec_init(&known, sizeof(KnownSpan));
    Py_ssize_t words = (e->rule_root.size + 63) / 64;
    uint64_t *candidates = PyMem_Calloc((size_t)words + 1, sizeof(uint64_t));
    if (candidates == NULL)
        return PyErr_NoMemory();
    PyObject *hits = PyList_New(0);
    if (hits == NULL)
        goto done;
    const EventRange *events = (const EventRange *)s->events.data;
    for (Py_ssize_t i = 0; i < s->events.size; i++) {
        int32_t event = events[i].event;
        for (int32_t k = e->event_rules_start.data[event];
             k < e->event_rules_start.data[event + 1]; k++) {
            int32_t rule = e->event_rules.data[k];
            candidates[rule >> 6] |= UINT64_C(1) << (rule & 63);
        }
    }
    for (Py_ssize_t w = 0; w < words; w++) {
        for (uint64_t bits = candidates[w]; bits; bits &= bits - 1) {
            int32_t rule = (int32_t)(w * 64 + __builtin_ctzll(bits));
            if (!rule_takes(e, rule, feed, language))
                continue;
            int32_t root = e->rule_root.data[rule];
            int true_ = holds(s, root, 0);
            if (true_ < 0)
                goto fail;
            if (!true_)
                continue;
            s->collected.size = 0;
            if (collect(s, root, 0) < 0)
                goto fail;
            PyObject *spans = spans_of(s, texts, &known);
            if (spans == NULL)
                goto fail;
            PyObject *args[2] = {PyTuple_GET_ITEM(e->names, rule), spans};
            PyObject *hit = make(e->hit_type, e->hit_slots, args, 2);
            Py_DECREF(spans);
            if (hit == NULL)
                goto fail;
            int appended = PyList_Append(hits, hit);
            Py_DECREF(hit);
            if (appended < 0)
                goto fail;
        }
    }
    goto done;
fail:
    Py_CLEAR(hits);
done:
    for (Py_ssize_t k = 0; k < known.size; k++)
        Py_DECREF(((KnownSpan *)known.data)[k].span);
    vec_free(&known);
    PyMem_Free(candidates);
    return hits;
}

static PyObject *Engine_match(Engine *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "match(title, summary, feed, language)");
        return NULL;
    }
    PyObject *texts[2] = {args[0], args[1]};
    if (!PyUnicode_Check(texts[0]) || !PyUnicode_Check(texts[1])) {
        PyErr_SetString(PyExc_TypeError, "title and summary must be str");
        return NULL;
    }
    long feed = PyLong_AsLong(args[2]);
    long language = feed == -1 && PyErr_Occurred() ? -1 : PyLong_AsLong(args[3]);
    if (PyErr_Occurred())
        return NULL;
    if (feed < 0 || feed > INT32_MAX) /* no feed any rule names */
        feed = -1;
    if (language < 0 || language > INT32_MAX)
        language = -1;
    Scan s;
    s.e = self;
    vec_init(&s.words, sizeof(Word));
    vec_init(&s.prefixes, sizeof(int32_t));
    vec_init(&s.found, sizeof(Occurrence));
    vec_init(&s.events, sizeof(EventRange));
    vec_init(&s.collected, sizeof(Place));
    PyObject *result = NULL;
    for (int field = 0; field < 2; field++) {
        int split = split_field(&s, texts[field], field);
        if (split < 0)
            goto done;
        if (split > 0) {
            result = Py_NewRef(Py_None); /* for the Python engine */
            goto done;
        }
    }
    int found = find_phrases(&s);
    if (found < 0)
        goto done;
    if (found > 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (s.events.size == 0)
        result = PyList_New(0);
    else
        result = hits_of(&s, texts, (int32_t)feed, (int32_t)language);
done:
    scan_free(&s);
    return result;
}

/* ---------------------------------------------------------------------------------------
 * construction: read the tables and check every index they hold
 */

/* Table arguments, in order (see TABLE_NAMES in watcher/rules/native.py). */
enum {
    T_CHAR_TABLE, T_FOLD_POOL, T_ASTRAL, T_TRIE_PARENT, T_TRIE_CHAR, T_NODE_FORM, T_NODE_PREFIX,
    T_ATOMS, T_SINGLE_START, T_SINGLE, T_PAIR_FIRST, T_PAIR_SECOND, T_PAIR_START,
    T_PAIR_PHRASES,
    T_PHRASE_WORDS_START, T_WORD_PREFIX, T_WORD_FORMS_START, T_WORD_FORMS,
    T_PHRASE_EVENTS_START, T_PHRASE_EVENTS, T_EVENT_RULES_START, T_EVENT_RULES,
    T_NODE_KIND, T_NODE_A, T_NODE_B, T_NODE_C, T_NODE_POOL,
    T_RULE_ROOT, T_RULE_FILTER, T_RULE_FEEDS_START, T_RULE_FEEDS, T_RULE_LANGUAGES_START,
    T_RULE_LANGUAGES,
    T_TABLES
};

static int bad(const char *what) {
    PyErr_Format(PyExc_ValueError, "native matcher tables: %s", what);
    return -1;
}

static int read_ints(PyObject *tables, int index, Ints *out) {
    PyObject *item = PyTuple_GET_ITEM(tables, index);
    if (!PyBytes_Check(item) || PyBytes_GET_SIZE(item) % 4)
        return bad("a table is not bytes of int32");
    out->data = (const int32_t *)PyBytes_AS_STRING(item);
    out->size = PyBytes_GET_SIZE(item) / 4;
    return 0;
}

/* every value in [lo, hi) */
static int within(const Ints *v, int64_t lo, int64_t hi, const char *what) {
    for (Py_ssize_t i = 0; i < v->size; i++)
        if (v->data[i] < lo || v->data[i] >= hi)
            return bad(what);
    return 0;
}

/* a CSR start array: `count` + 1 entries, from 0, never decreasing, ending at `pool` */
static int offsets(const Ints *v, Py_ssize_t count, Py_ssize_t pool, const char *what) {
    if (v->size != count + 1 || v->data[0] != 0 || v->data[count] != pool)
        return bad(what);
    for (Py_ssize_t i = 0; i < count; i++)
        if (v->data[i] > v->data[i + 1])
            return bad(what);
    return 0;
}

static int build_blocks(Engine *self) {
    self->blocks = PyMem_Malloc(0x10000 * sizeof(int32_t));
    if (self->blocks == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int used = 0;
    for (int high = 0; high < 256; high++) {
        const int32_t *block = self->char_table.data + (high << 8);
        int found = used;
        for (int k = 0; k < used; k++)
            if (memcmp(self->blocks + (k << 8), block, 256 * sizeof(int32_t)) == 0) {
                found = k;
                break;
            }
        if (found == used)
            memcpy(self->blocks + (used++ << 8), block, 256 * sizeof(int32_t));
        self->block_of[high] = (uint16_t)found;
    }
    return 0;
}

static int build_pairs(Engine *self, const Ints *first, const Ints *second) {
    if (table_init(&self->pairs, first->size) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < first->size; i++)
        if (table_put(&self->pairs, pair_key(first->data[i], second->data[i]), (int32_t)i,
                      "a pair of atoms") < 0)
            return -1;
    return 0;
}

static int build_trie(Engine *self, const Ints *parent, const Ints *chars) {
    Py_ssize_t count = parent->size; /* transitions: child node i + 1 */
    if (table_init(&self->trie, count) < 0)
        return -1;
    self->root_children = PyMem_Malloc(0x10000 * sizeof(int32_t));
    if (self->root_children == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t cp = 0; cp < 0x10000; cp++)
        self->root_children[cp] = -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        int32_t node = parent->data[i], cp = chars->data[i];
        if (node < 0 || node > i || cp < 0 || cp > 0x10FFFF)
            return bad("trie transition out of range");
        uint64_t key = (((uint64_t)node << CP_BITS) | (uint64_t)cp) + 1;
        if (table_put(&self->trie, key, (int32_t)(i + 1), "a trie transition") < 0)
            return -1;
        if (node == 0 && cp < 0x10000)
            self->root_children[cp] = (int32_t)(i + 1);
    }
    return 0;
}

/* Expression nodes form trees, one per rule: each node after its parent, each the child of
 * one node or the root of one rule (a node shared by two parents would make evaluation
 * exponential in the depth). */
static int check_nodes(Engine *self) {
    Py_ssize_t nodes = self->node_kind.size;
    if (self->node_a.size != nodes || self->node_b.size != nodes || self->node_c.size != nodes)
        return bad("expression node arrays differ in length");
    char *parented = PyMem_Calloc((size_t)nodes + 1, 1);
    if (parented == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int result = -1;
#define ADOPT(child)                                                                         \
    do {                                                                                     \
        if (parented[child]++) {                                                             \
            bad("an expression node with two parents");                                      \
            goto done;                                                                       \
        }                                                                                    \
    } while (0)
    for (Py_ssize_t i = 0; i < nodes; i++) {
        int32_t kind = self->node_kind.data[i], a = self->node_a.data[i];
        int32_t b = self->node_b.data[i];
        switch (kind) {
        case NODE_ATOM:
        case NODE_ALL:
        case NODE_ANY:
            if (a < 0 || b < 0 || (int64_t)a + b > self->node_pool.size) {
                bad("expression node outside its pool");
                goto done;
            }
            for (int32_t k = 0; k < b; k++) {
                int32_t value = self->node_pool.data[a + k];
                if (kind == NODE_ATOM ? value < 0 || value >= self->events
                                      : value <= i || value >= nodes) {
                    bad("expression node refers out of range");
                    goto done;
                }
                if (kind == NODE_ATOM && k && value <= self->node_pool.data[a + k - 1]) {
                    bad("atom events not ascending");
                    goto done;
                }
                if (kind != NODE_ATOM)
                    ADOPT(value);
            }
            break;
        case NODE_NOT:
            if (a <= i || a >= nodes) {
                bad("NOT refers out of range");
                goto done;
            }
            ADOPT(a);
            break;
        case NODE_NEAR:
            if (a <= i || a >= nodes || b <= i || b >= nodes || self->node_c.data[i] < 0 ||
                self->node_kind.data[a] != NODE_ATOM || self->node_kind.data[b] != NODE_ATOM) {
                bad("NEAR refers out of range");
                goto done;
            }
            ADOPT(a);
            ADOPT(b);
            break;
        default:
            bad("unknown expression node");
            goto done;
        }
    }
    for (Py_ssize_t r = 0; r < self->rule_root.size; r++) {
        int32_t root = self->rule_root.data[r];
        if (root < 0 || root >= nodes) {
            bad("rule root out of range");
            goto done;
        }
        ADOPT(root);
    }
#undef ADOPT
    result = 0;
done:
    PyMem_Free(parented);
    return result;
}

static int check_tables(Engine *self, PyObject *tables) {
    Ints t[T_TABLES];
    for (int i = 0; i < T_TABLES; i++)
        if (read_ints(tables, i, &t[i]) < 0)
            return -1;
    self->char_table = t[T_CHAR_TABLE];
    self->fold_pool = (const uint32_t *)t[T_FOLD_POOL].data;
    self->fold_pool_size = t[T_FOLD_POOL].size;
    if (self->char_table.size != 0x10000)
        return bad("the character table must have 65536 entries");
    for (Py_ssize_t i = 0; i < 0x10000; i++) {
        int32_t cls = self->char_table.data[i];
        if (cls < CH_IGNORABLE ||
            (cls >= 0 && ((cls & 7) == 1 ? (cls >> 3) > 0x10FFFF
                                         : (cls >> 3) + (cls & 7) > self->fold_pool_size)))
            return bad("character table entry out of range");
    }
    for (Py_ssize_t i = 0; i < self->fold_pool_size; i++)
        if (self->fold_pool[i] > 0x10FFFF)
            return bad("folded character out of range");
    if (build_blocks(self) < 0)
        return -1;
    const Ints *astral = &t[T_ASTRAL];
    if (astral->size < 1 || astral->data[0] < 0x10000 || astral->data[0] > 0x10FFFF ||
        (int64_t)astral->data[0] + astral->size - 1 > 0x110000)
        return bad("the astral table must start with its first code point");
    self->astral_first = (Py_UCS4)astral->data[0];
    self->astral.data = astral->data + 1;
    self->astral.size = astral->size - 1;
    for (Py_ssize_t i = 0; i < self->astral.size; i++)
        if (self->astral.data[i] < CH_IGNORABLE || self->astral.data[i] >= 0)
            return bad("an astral character must be a separator, ignorable or complex");
    if (t[T_TRIE_PARENT].size != t[T_TRIE_CHAR].size)
        return bad("trie arrays differ in length");
    Py_ssize_t nodes = t[T_TRIE_PARENT].size + 1;
    if (build_trie(self, &t[T_TRIE_PARENT], &t[T_TRIE_CHAR]) < 0)
        return -1;
    self->node_form = t[T_NODE_FORM];
    self->node_prefix = t[T_NODE_PREFIX];
    if (self->node_form.size != nodes || self->node_prefix.size != nodes)
        return bad("trie node arrays differ in length");
    if (t[T_ATOMS].size != 2 || t[T_ATOMS].data[0] < 0 || t[T_ATOMS].data[1] < 0)
        return bad("atoms: the number of forms and of prefixes");
    Py_ssize_t forms = self->forms = t[T_ATOMS].data[0];
    Py_ssize_t prefixes = self->prefixes = t[T_ATOMS].data[1];
    Py_ssize_t pairs = t[T_PAIR_FIRST].size;
    Py_ssize_t phrases = t[T_PHRASE_WORDS_START].size - 1;
    Py_ssize_t specs = t[T_WORD_PREFIX].size;
    Py_ssize_t rules = t[T_RULE_ROOT].size;
    self->events = t[T_EVENT_RULES_START].size - 1;
    if (phrases < 0 || self->events < 0)
        return bad("an offsets table is empty");
    if (within(&self->node_form, -1, forms, "trie form id out of range") < 0 ||
        within(&self->node_prefix, -1, prefixes, "trie prefix id out of range") < 0 ||
        offsets(&t[T_SINGLE_START], forms + prefixes, t[T_SINGLE].size, "single phrases") < 0 ||
        within(&t[T_SINGLE], 0, phrases, "single phrase out of range") < 0 ||
        (t[T_PAIR_SECOND].size != pairs && bad("pair arrays differ in length") < 0) ||
        within(&t[T_PAIR_FIRST], 0, forms + prefixes, "pair atom out of range") < 0 ||
        within(&t[T_PAIR_SECOND], 0, forms + prefixes, "pair atom out of range") < 0 ||
        offsets(&t[T_PAIR_START], pairs, t[T_PAIR_PHRASES].size, "pair phrases") < 0 ||
        within(&t[T_PAIR_PHRASES], 0, phrases, "pair phrase out of range") < 0 ||
        offsets(&t[T_PHRASE_WORDS_START], phrases, specs, "phrase words") < 0 ||
        within(&t[T_WORD_PREFIX], -1, prefixes, "word prefix out of range") < 0 ||
        offsets(&t[T_WORD_FORMS_START], specs, t[T_WORD_FORMS].size, "word forms") < 0 ||
        within(&t[T_WORD_FORMS], 0, forms, "word form out of range") < 0 ||
        offsets(&t[T_PHRASE_EVENTS_START], phrases * 2, t[T_PHRASE_EVENTS].size,
                "phrase events") < 0 ||
        within(&t[T_PHRASE_EVENTS], 0, self->events, "phrase event out of range") < 0 ||
        offsets(&t[T_EVENT_RULES_START], self->events, t[T_EVENT_RULES].size,
                "event rules") < 0 ||
        within(&t[T_EVENT_RULES], 0, rules, "event rule out of range") < 0 ||
        offsets(&t[T_RULE_FEEDS_START], rules, t[T_RULE_FEEDS].size, "rule feeds") < 0 ||
        offsets(&t[T_RULE_LANGUAGES_START], rules, t[T_RULE_LANGUAGES].size,
                "rule languages") < 0 ||
        (t[T_RULE_FILTER].size != rules && bad("one filter per rule") < 0))
        return -1;
    for (Py_ssize_t p = 0; p < phrases; p++)
        if (t[T_PHRASE_WORDS_START].data[p] == t[T_PHRASE_WORDS_START].data[p + 1])
            return bad("a phrase without words");
    self->single_start = t[T_SINGLE_START];
    self->single = t[T_SINGLE];
    self->pair_start = t[T_PAIR_START];
    self->pair_phrases = t[T_PAIR_PHRASES];
    if (build_pairs(self, &t[T_PAIR_FIRST], &t[T_PAIR_SECOND]) < 0)
        return -1;
    self->phrase_words_start = t[T_PHRASE_WORDS_START];
    self->word_prefix = t[T_WORD_PREFIX];
    self->word_forms_start = t[T_WORD_FORMS_START];
    self->word_forms = t[T_WORD_FORMS];
    self->phrase_events_start = t[T_PHRASE_EVENTS_START];
    self->phrase_events = t[T_PHRASE_EVENTS];
    self->event_rules_start = t[T_EVENT_RULES_START];
    self->event_rules = t[T_EVENT_RULES];
    self->node_kind = t[T_NODE_KIND];
    self->node_a = t[T_NODE_A];
    self->node_b = t[T_NODE_B];
    self->node_c = t[T_NODE_C];
    self->node_pool = t[T_NODE_POOL];
    self->rule_root = t[T_RULE_ROOT];
    self->rule_filter = t[T_RULE_FILTER];
    self->rule_feeds_start = t[T_RULE_FEEDS_START];
    self->rule_feeds = t[T_RULE_FEEDS];
    self->rule_languages_start = t[T_RULE_LANGUAGES_START];
    self->rule_languages = t[T_RULE_LANGUAGES];
    if (check_nodes(self) < 0 ||
        within(&self->rule_filter, 0, 4, "rule filter out of range") < 0)
        return -1;
    /* sorted sets, as contains() needs */
    const Ints *sorted[3][2] = {{&t[T_WORD_FORMS_START], &t[T_WORD_FORMS]},
                                {&t[T_RULE_FEEDS_START], &t[T_RULE_FEEDS]},
                                {&t[T_RULE_LANGUAGES_START], &t[T_RULE_LANGUAGES]}};
    for (int k = 0; k < 3; k++) {
        const Ints *start = sorted[k][0], *pool = sorted[k][1];
        for (Py_ssize_t i = 0; i + 1 < start->size; i++)
            for (int32_t j = start->data[i] + 1; j < start->data[i + 1]; j++)
                if (pool->data[j] <= pool->data[j - 1])
                    return bad("a set is not ascending");
    }
    return 0;
}

/* The member descriptors of a slotted class's fields, if setting them on an instance from
 * tp_new builds an object equal to calling the class with `sample`; else NULLs. */
static int find_slots(PyObject *type, const char *const *names, PyObject **slots,
                      PyObject *const *sample, Py_ssize_t count) {
    for (Py_ssize_t k = 0; k < count; k++) {
        slots[k] = NULL;
    }
    if (!PyType_Check(type) || ((PyTypeObject *)type)->tp_new == NULL)
        return 0;
    if (PyObject_HasAttrString(type, "__post_init__")) /* its __init__ does more */
        return 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *descr = PyObject_GetAttrString(type, names[k]);
        if (descr == NULL)
            goto refuse;
        slots[k] = descr;
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) /* a __slots__ slot, nothing else */
            goto refuse;
    }
    PyObject *fast = make(type, slots, sample, count);
    PyObject *slow = fast ? PyObject_Vectorcall(type, sample, (size_t)count, NULL) : NULL;
    int same = fast && slow ? PyObject_RichCompareBool(fast, slow, Py_EQ) : 0;
    Py_XDECREF(fast);
    Py_XDECREF(slow);
    if (same == 1)
        return 0;
refuse:
    PyErr_Clear();
    for (Py_ssize_t k = 0; k < count; k++)
        Py_CLEAR(slots[k]);
    return 0;
}

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *tables, *names, *fields, *span_type, *hit_type;
    static char *keywords[] = {"tables", "names", "fields", "span", "hit", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!OO", keywords, &PyTuple_Type,
                                     &tables, &PyTuple_Type, &names, &PyTuple_Type, &fields,
                                     &span_type, &hit_type))
        return NULL;
    if (PyTuple_GET_SIZE(tables) != T_TABLES) {
        PyErr_Format(PyExc_ValueError, "native matcher tables: expected %d tables", T_TABLES);
        return NULL;
    }
    if (PyTuple_GET_SIZE(fields) != 2) {
        PyErr_SetString(PyExc_ValueError, "native matcher: two fields");
        return NULL;
    }
    Engine *self = (Engine *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->owned = Py_NewRef(tables);
    self->names = Py_NewRef(names);
    self->fields = Py_NewRef(fields);
    self->span_type = Py_NewRef(span_type);
    self->hit_type = Py_NewRef(hit_type);
    static const char *const span_names[4] = {"field", "start", "end", "text"};
    static const char *const hit_names[2] = {"rule", "spans"};
    PyObject *zero = PyLong_FromLong(0);
    PyObject *nothing = PyTuple_New(0);
    if (zero == NULL || nothing == NULL) {
        Py_XDECREF(zero);
        Py_XDECREF(nothing);
        Py_DECREF(self);
        return NULL;
    }
    PyObject *span_sample[4] = {PyTuple_GET_ITEM(fields, 0), zero, zero,
                                PyTuple_GET_ITEM(fields, 0)};
    PyObject *hit_sample[2] = {PyTuple_GET_ITEM(fields, 0), nothing};
    find_slots(span_type, span_names, self->span_slots, span_sample, 4);
    find_slots(hit_type, hit_names, self->hit_slots, hit_sample, 2);
    Py_DECREF(zero);
    Py_DECREF(nothing);
    if (check_tables(self, tables) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (PyTuple_GET_SIZE(names) != self->rule_root.size) {
        Py_DECREF(self);
        return bad("one name per rule"), NULL;
    }
    return (PyObject *)self;
}

static void Engine_dealloc(Engine *self) {
    PyMem_Free(self->trie.slots);
    PyMem_Free(self->pairs.slots);
    PyMem_Free(self->blocks);
    PyMem_Free(self->root_children);
    for (int k = 0; k < 4; k++)
        Py_XDECREF(self->span_slots[k]);
    for (int k = 0; k < 2; k++)
        Py_XDECREF(self->hit_slots[k]);
    Py_XDECREF(self->owned);
    Py_XDECREF(self->names);
    Py_XDECREF(self->fields);
    Py_XDECREF(self->span_type);
    Py_XDECREF(self->hit_type);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Engine_builds_directly(Engine *self, PyObject *unused) {
    return PyBool_FromLong(self->span_slots[0] != NULL && self->hit_slots[0] != NULL);
}

static PyMethodDef Engine_methods[] = {
    {"match", (PyCFunction)(void (*)(void))Engine_match, METH_FASTCALL,
     "match(title, summary, feed, language) -> list of hits, or None where the Python "
     "engine must match the entry"},
    {"builds_directly", (PyCFunction)(void (*)(void))Engine_builds_directly, METH_NOARGS,
     "Whether spans and hits are built by setting their slots (else by calling them)"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Engine_members[] = {
    {"tables", T_OBJECT, offsetof(Engine, owned), READONLY, "the tables it was built from"},
    {"names", T_OBJECT, offsetof(Engine, names), READONLY, "the rule names, in hit order"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "watcher.rules._native.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Compiled rule tables, matched in C.",
    .tp_new = Engine_new,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
    .tp_members = Engine_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "watcher.rules._native",
    .m_doc = "The rule matcher's hot path in C (see watcher/rules/native.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&EngineType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Engine", (PyObject *)&EngineType) < 0 ||
        PyModule_AddIntConstant(m, "TABLES", T_TABLES) < 0 ||
        PyModule_AddIntConstant(m, "VERSION", ENGINE_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
