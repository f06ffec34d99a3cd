/*
 * The baseline of the build benchmark: read a JSON lines file and parse
 * every line with jansson, as `xun index` must before any indexing.
 *
 * usage: bench_parse FILE.jsonl
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_parse FILE.jsonl\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0, docs = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t err;
        json_t *v = json_loadb(line, (size_t)n, 0, &err);
        docs += v != NULL;
        json_decref(v);
    }
    free(line);
    fclose(f);
    return docs ? 0 : 1;
}
