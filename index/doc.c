/* Stored document records and date parsing (see doc.h). */
#include "index/doc.h"

#include "index/bytes.h"
#include "index/error.h"

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
    put_text(out, d->json);
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
    if (!get_text(&p, end, &d->json) || p != end)
        return xerr_corrupt(err, "stored document: bad JSON length");
    if (d->date.p && !doc_parse_date(d->date.p, d->date.len, &d->date_s))
        d->date_s = DOC_DATE_NONE;
    return XE_OK;
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
