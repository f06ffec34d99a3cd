/*
 * The search page served at GET / (server/page.html, embedded into the
 * binary at build time by the Makefile, so that the program is one file).
 */
#ifndef XUN_SERVER_PAGE_H
#define XUN_SERVER_PAGE_H

#include <stddef.h>

extern const unsigned char page_html[];
extern const size_t page_html_len;

#endif
