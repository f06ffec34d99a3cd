/*
 * Simplified/traditional folding: every Chinese character is mapped to one
 * form, character by character, so that 馬斯克 and 马斯克 are the same terms.
 *
 * The table is OpenCC's traditional-to-simplified character table
 * (TSCharacters, from Debian's libopencc-data), generated at build time by
 * index/text/variants_gen.c. Folding goes toward simplified because that direction
 * is many-to-one: 發 (emit) and 髮 (hair) both become 发, 後 becomes 后. The
 * other direction would have to guess (发 -> 發 or 髮?) and lose recall
 * whenever it guessed wrong. The price is that traditional texts no longer
 * tell 發 from 髮, exactly as simplified texts never did; bigrams keep the
 * words apart (头发, 发展). Where OpenCC lists several simplified candidates
 * (乾 -> 干 or 乾), its default, the first, is taken. Simplified characters
 * never change, so simplified text indexes as before.
 *
 * Folding is one code point to one code point, so offsets into the original
 * text stay exact and highlights cover what the text really had.
 */
#ifndef XUN_INDEX_VARIANTS_H
#define XUN_INDEX_VARIANTS_H

#include <stdint.h>

/* Generated table (build/gen/variants_table.c): sorted by from. */
extern const uint32_t variant_fold_count;
extern const int32_t variant_fold_from[];
extern const int32_t variant_fold_to[];
extern const uint64_t variant_fold_bmp_bits[1024];

/* The simplified form of cp, or cp when it has none. */
static inline int32_t variant_fold(int32_t cp)
{
    if (cp < 0x10000 && !(variant_fold_bmp_bits[cp >> 6] >> (cp & 63) & 1))
        return cp;
    uint32_t lo = 0, hi = variant_fold_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (variant_fold_from[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < variant_fold_count && variant_fold_from[lo] == cp ? variant_fold_to[lo] : cp;
}

#endif
