/* Stored document records and date parsing (see doc.h). */
#include "index/format/doc.h"

#include <string.h>

#include "index/base/bytes.h"
#include "index/base/error.h"

enum {
    DOC_HAS_ID = 1 << 0,
    DOC_HAS_TITLE = 1 << 1,
    DOC_HAS_BODY = 1 << 2,
    DOC_HAS_SOURCE = 1 << 3,
    DOC_HAS_DATE = 1 << 4,
    DOC_HAS_URL = 1 << 5,
    DOC_HAS_TAGS = 1 << 6,
};

static void put_text(struct buf *out, struct text t)
{
    buf_append_varint(out, t.len);
    buf_append(out, t.p, t.len);
}

/* The field values in template order: id, title, body, source, date, url, tags. */
static size_t field_values(const struct doc_fields *d, const struct text **out)
{
    size_t n = 0;
    out[n++] = &d->id;
    out[n++] = &d->title;
    out[n++] = &d->body;
    out[n++] = &d->source;
    out[n++] = &d->date;
    out[n++] = &d->url;
    for (size_t i = 0; i < d->n_tags; i++)
        out[n++] = &d->tags[i];
    return n;
}

/* The way JSON writers usually write a string: ", \ and control characters escaped. */
static void json_quote(struct buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";

    buf_append_byte(out, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
                        : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b"
                        : c == '\f' ? "\\f" : NULL;
        if (esc) {
            buf_append_str(out, esc);
        } else if (c < 0x20) {
            char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            buf_append(out, u, sizeof u);
        } else {
            buf_append_byte(out, c);
        }
    }
    buf_append_byte(out, '"');
}

static bool json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Where the quoted value q stands in json as a value (not a key), from byte from; or -1. */
static long find_value(const char *json, size_t len, size_t from, const unsigned char *q,
                       size_t q_len)
{
    while (from + q_len <= len) {
        const char *hit = memmem(json + from, len - from, q, q_len);
        if (!hit)
            return -1;
        size_t at = (size_t)(hit - json), before = at, after = at + q_len;
        while (before > 0 && json_space(json[before - 1]))
            before--;
        while (after < len && json_space(json[after]))
            after++;
        bool is_key = after < len && json[after] == ':';
        if (before > 0 && !is_key &&
            (json[before - 1] == ':' || json[before - 1] == '[' || json[before - 1] == ','))
            return (long)at;
        from = at + 1;
    }
    return -1;
}

/* Appends the template of d's JSON: field values replaced by references. */
static void encode_template(const struct doc_fields *d, struct buf *out)
{
    const struct text *values[6 + DOC_MAX_TAGS];
    size_t n = field_values(d, values), at = 0;
    struct buf quoted;
    struct { size_t start, end; unsigned char code; } refs[6 + DOC_MAX_TAGS];
    size_t n_refs = 0;

    buf_init(&quoted, 2 * (size_t)DOC_MAX_BYTES + 16);
    for (size_t i = 0; i < n; i++) {
        if (!values[i]->p)
            continue;
        buf_reset(&quoted);
        json_quote(&quoted, values[i]->p, values[i]->len);
        if (quoted.rc)
            continue;
        /* values appear in any order: search the whole text, skipping taken spans */
        size_t from = 0;
        for (;;) {
            long pos = find_value(d->json.p, d->json.len, from, quoted.data, quoted.len);
            if (pos < 0)
                break;
            bool taken = false;
            for (size_t k = 0; k < n_refs && !taken; k++)
                taken = (size_t)pos < refs[k].end && (size_t)pos + quoted.len > refs[k].start;
            if (!taken) {
                refs[n_refs].start = (size_t)pos;
                refs[n_refs].end = (size_t)pos + quoted.len;
                refs[n_refs++].code = (unsigned char)(i + 1);
                break;
            }
            from = (size_t)pos + 1;
        }
    }
    buf_fini(&quoted);
    /* in text order */
    for (size_t i = 1; i < n_refs; i++)
        for (size_t k = i; k > 0 && refs[k - 1].start > refs[k].start; k--) {
            __typeof__(refs[0]) t = refs[k];
            refs[k] = refs[k - 1];
            refs[k - 1] = t;
        }
    size_t len = d->json.len;
    for (size_t k = 0; k < n_refs; k++)
        len -= refs[k].end - refs[k].start - 2;
    buf_append_varint(out, len);
    for (size_t k = 0; k < n_refs; k++) {
        buf_append(out, d->json.p + at, refs[k].start - at);
        buf_append_byte(out, 0);
        buf_append_byte(out, refs[k].code);
        at = refs[k].end;
    }
    buf_append(out, d->json.p + at, d->json.len - at);
}

int doc_json(const struct doc_fields *d, struct buf *out, struct xerr *err)
{
    const struct text *values[6 + DOC_MAX_TAGS];
    size_t n = field_values(d, values);
    const char *t = d->json_template.p;
    size_t len = d->json_template.len, at = 0;

    for (size_t i = 0; i < len; i++) {
        if (t[i] != '\0')
            continue;
        unsigned code = i + 1 < len ? (unsigned char)t[i + 1] : 0;
        if (!code || code > n || !values[code - 1]->p)
            return xerr_corrupt(err, "stored document: bad field reference");
        buf_append(out, t + at, i - at);
        json_quote(out, values[code - 1]->p, values[code - 1]->len);
        at = i + 2;
        i++;
    }
    buf_append(out, t + at, len - at);
    return out->rc ? xerr_set(err, out->rc, "stored document: too large") : XE_OK;
}

int doc_record_encode(const struct doc_fields *d, struct buf *out)
{
    const struct text *texts[] = { &d->id, &d->title, &d->body, &d->source, &d->date, &d->url };
    unsigned mask = 0;

    for (unsigned i = 0; i < 6; i++)
        if (texts[i]->p)
            mask |= 1u << i;
    if (d->n_tags)
        mask |= DOC_HAS_TAGS;
    buf_append_varint(out, mask);
    for (unsigned i = 0; i < 6; i++)
        if (texts[i]->p)
            put_text(out, *texts[i]);
    if (d->n_tags) {
        buf_append_varint(out, d->n_tags);
        for (size_t i = 0; i < d->n_tags; i++)
            put_text(out, d->tags[i]);
    }
    if (!d->json.p && d->json_template.p) /* decoded before: its template is still right */
        put_text(out, d->json_template);
    else
        encode_template(d, out);
    return out->rc;
}

static bool get_text(const unsigned char **p, const unsigned char *end, struct text *t)
{
    uint64_t len;

    if (!varint_get(p, end, &len) || len > (uint64_t)(end - *p))
        return false;
    t->p = (const char *)*p;
    t->len = (size_t)len;
    *p += len;
    return true;
}

int doc_record_decode(const unsigned char *rec, size_t len, struct doc_fields *d,
                      struct xerr *err)
{
    const unsigned char *p = rec, *end = rec + len;
    struct text *texts[] = { &d->id, &d->title, &d->body, &d->source, &d->date, &d->url };
    uint64_t mask, n_tags;

    *d = (struct doc_fields){ .date_s = DOC_DATE_NONE };
    if (!varint_get(&p, end, &mask) || mask >= 1u << 7)
        return xerr_corrupt(err, "stored document: bad field mask");
    for (unsigned i = 0; i < 6; i++)
        if ((mask & (1u << i)) && !get_text(&p, end, texts[i]))
            return xerr_corrupt(err, "stored document: field %u runs past the record", i);
    if (mask & DOC_HAS_TAGS) {
        if (!varint_get(&p, end, &n_tags) || n_tags > DOC_MAX_TAGS)
            return xerr_corrupt(err, "stored document: bad tag count");
        for (size_t i = 0; i < n_tags; i++)
            if (!get_text(&p, end, &d->tags[i]))
                return xerr_corrupt(err, "stored document: tag %zu runs past the record", i);
        d->n_tags = (size_t)n_tags;
    }
    if (!get_text(&p, end, &d->json_template) || p != end)
        return xerr_corrupt(err, "stored document: bad JSON length");
    if (d->date.p && !doc_parse_date(d->date.p, d->date.len, &d->date_s))
        d->date_s = DOC_DATE_NONE;
    return XE_OK;
}

size_t doc_exact_len(const char *value, size_t len)
{
    size_t keep = len < TOKEN_MAX_BYTES ? len : TOKEN_MAX_BYTES;
    while (keep < len && keep && ((unsigned char)value[keep] & 0xC0) == 0x80)
        keep--;
    return keep;
}

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool doc_parse_date(const char *s, size_t len, int64_t *out_s)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0;
    static const int month_days[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    if (len < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1])
        return false;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return false;
    size_t i = 10;
    int64_t offset_s = 0;
    if (i < len) {
        if (len < 19 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
            !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) ||
            s[16] != ':' || !digits(s + 17, 2, &sec) || h > 23 || mi > 59 || sec > 60)
            return false;
        i = 19;
        if (i < len && s[i] == '.') {
            i++;
            size_t frac = i;
            while (i < len && s[i] >= '0' && s[i] <= '9')
                i++;
            if (i == frac)
                return false;
        }
        if (i == len)
            return false; /* RFC 3339 requires an offset */
        if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
            i++;
        } else if ((s[i] == '+' || s[i] == '-') && len - i == 6 && digits(s + i + 1, 2, &oh) &&
                   s[i + 3] == ':' && digits(s + i + 4, 2, &om) && oh <= 23 && om <= 59) {
            offset_s = (s[i] == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
            i = len;
        } else {
            return false;
        }
    }
    if (i != len)
        return false;
    *out_s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    return true;
}
