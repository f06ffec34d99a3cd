# xun: build, test, run, bench. A plain Makefile; see README.md.
#
#   make            build ./xun (optimized)
#   make test       check, then build and run every test under ASan + UBSan
#   make test-browser  the search page in headless Chromium
#   make run        index corpus/ into data/ on first start, then serve it
#   make check      include rules and banned functions
#   make deps       install missing Debian packages (as root)
#   make install    xun, man page and systemd unit under PREFIX (default /usr/local)

CC      ?= cc
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wvla -Wundef -Wpointer-arith $(if $(WERROR),-Werror)
CFLAGS  ?= -O2
CFLAGS  += -std=c11 -D_GNU_SOURCE -I. -g -pthread $(WARN)
SANITIZE = -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LIBS     = -levent -levent_pthreads -lhttp_parser -ljansson -lutf8proc -lzstd -lm -pthread
TEST_LIBS = $(LIBS) -lcmocka

PREFIX  ?= /usr/local
DESTDIR ?=
DATA    ?= data
LISTEN  ?= 127.0.0.1:8080
CORPUS  ?= corpus/news.jsonl

# The layers of index/, lowest first (README.md, "Layout"): a file includes
# headers of its own layer and lower ones only; index/*.[ch] above them all
# (the index folder and the live writer) is the front door. make check
# enforces it.
INDEX_LAYERS = base text format write

INDEX_SRC  = $(filter-out index/text/variants_gen.c,$(wildcard index/*.c $(INDEX_LAYERS:%=index/%/*.c)))
QUERY_SRC  = $(wildcard query/*.c)
SERVER_SRC = $(filter-out server/main.c,$(wildcard server/*.c))
GEN_SRC    = build/gen/page_html.c build/gen/variants_table.c
LIB_SRC    = $(INDEX_SRC) $(QUERY_SRC) $(SERVER_SRC) $(GEN_SRC)
HEADERS    = $(wildcard index/*.h $(INDEX_LAYERS:%=index/%/*.h) query/*.h server/*.h tests/*.h)
TESTS      = $(patsubst tests/%.c,%,$(wildcard tests/test_*.c))

# Debian packages the build and tests need (header -> package; opencc gives the
# simplified/traditional table, read at build time only).
DEB_PKGS = libevent-dev libhttp-parser-dev libjansson-dev libcmocka-dev libutf8proc-dev libzstd-dev pkg-config opencc
OPENCC_TS = /usr/share/opencc/TSCharacters.ocd2

.PHONY: all deps test test-browser check run clean bench install uninstall soak fuzz

all: deps xun

deps:
	@missing=""; \
	for h in event2/event.h http_parser.h jansson.h cmocka.h utf8proc.h zstd.h; do \
	    printf "#include <stddef.h>\n#include <stdarg.h>\n#include <stdint.h>\n#include <setjmp.h>\n#include <%s>\n" $$h | \
	        $(CC) -E -x c - >/dev/null 2>&1 || missing=1; \
	done; \
	command -v opencc_dict >/dev/null && [ -e $(OPENCC_TS) ] || missing=1; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        echo "installing build dependencies: $(DEB_PKGS)"; \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS); \
	    else \
	        echo "missing build dependencies; as root run: apt-get install $(DEB_PKGS)" >&2; exit 1; \
	    fi; \
	fi

# The search page, embedded as a byte array so that xun is one file.
build/gen/page_html.c: server/page.html Makefile
	@mkdir -p $(dir $@)
	@{ echo '/* Generated from server/page.html by the Makefile; do not edit. */'; \
	   echo '#include "server/page.h"'; \
	   echo 'const unsigned char page_html[] = {'; \
	   od -An -v -tx1 server/page.html | sed 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	   echo '0 };'; \
	   echo 'const size_t page_html_len = sizeof page_html - 1;'; } > $@

# Simplified/traditional folding (index/text/variants.h), from OpenCC's table.
build/gen/variants_table.c: index/text/variants_gen.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -std=c11 -I. $< -o build/gen/variants_gen -lutf8proc
	opencc_dict -i $(OPENCC_TS) -o build/gen/TSCharacters.txt -f ocd2 -t text
	build/gen/variants_gen build/gen/TSCharacters.txt > $@.tmp && mv $@.tmp $@

build/opt/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

build/san/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -O%,$(CFLAGS)) $(SANITIZE) -c $< -o $@

xun: $(patsubst %.c,build/opt/%.o,$(LIB_SRC) server/main.c)
	$(CC) $(CFLAGS) $^ -o $@ $(LIBS)

build/san/xun: $(patsubst %.c,build/san/%.o,$(LIB_SRC) server/main.c)
	$(CC) $(SANITIZE) $^ -o $@ $(LIBS)

TEST_SUPPORT = tests/testutil.c tests/httpc.c tests/testserver.c

build/san/test_%: build/san/tests/test_%.o $(patsubst %.c,build/san/%.o,$(LIB_SRC) $(TEST_SUPPORT))
	$(CC) $(SANITIZE) $^ -o $@ $(TEST_LIBS)

# Benchmarks: optimized, and linked like the tests.
build/opt/bench_%: build/opt/tests/bench/bench_%.o $(patsubst %.c,build/opt/%.o,$(LIB_SRC) $(TEST_SUPPORT))
	$(CC) $(CFLAGS) $^ -o $@ $(TEST_LIBS)

build/opt/baseline_server: build/opt/tests/bench/baseline_server.o
	$(CC) $(CFLAGS) $^ -o $@ $(LIBS)

bench: all build/opt/bench_engine build/opt/bench_writes build/opt/bench_parse build/opt/bench_relevance \
       build/opt/baseline_server
	sh tests/bench/run.sh

test: deps check $(addprefix build/san/,$(TESTS)) build/san/xun
	@set -e; fail=0; \
	for t in $(TESTS); do \
	    echo "== $$t"; \
	    XUN_BIN=build/san/xun ./build/san/$$t || fail=$$((fail+1)); \
	done; \
	echo "== golden: xun analyze, highlights"; \
	XUN_BIN=build/san/xun sh tests/golden.sh || fail=$$((fail+1)); \
	echo "== fuzz: saved inputs"; \
	WERROR=$(WERROR) bash tests/fuzz/regress.sh || fail=$$((fail+1)); \
	if [ $$fail -ne 0 ]; then echo "$$fail test program(s) failed"; exit 1; fi; \
	echo "all test programs passed"

# Fuzz every parser for FUZZ_SECONDS each (clang, libFuzzer, ASan + UBSan).
fuzz: deps build/gen/variants_table.c
	bash tests/fuzz/run.sh

# A bounded soak: wrk at 256 connections over the query mix plus concurrent
# writes against the poetry corpus, with the server's memory sampled.
SOAK_SECONDS ?= 600
soak: all
	SOAK_SECONDS=$(SOAK_SECONDS) sh tests/soak/run.sh

# Installs xun, its man page and xun.service (docs/install.sh); as root with
# no DESTDIR also creates the system user xun. Never enables or starts it.
install: xun
	sh docs/install.sh install "$(PREFIX)" "$(DESTDIR)"

# Removes what install put; keeps /var/lib/xun and the user xun.
uninstall:
	sh docs/install.sh uninstall "$(PREFIX)" "$(DESTDIR)"

# The search page in headless Chromium (installs chromium and playwright-core when missing).
test-browser: all
	bash tests/browser/run.sh

# Include rules of STYLE.md, the layers of index/ (INDEX_LAYERS) and banned functions.
INDEX_FILES = index/*.[ch] $(INDEX_LAYERS:%=index/%/*.[ch])
check:
	@bad=0; \
	if grep -nE '#include "(query|server)/' $(INDEX_FILES); then echo "index/ may not include query/ or server/"; bad=1; fi; \
	if grep -nE '#include "server/' query/*.[ch]; then echo "query/ may not include server/"; bad=1; fi; \
	set -- $(INDEX_LAYERS); \
	for layer in $(INDEX_LAYERS); do \
	    shift; up='[a-z_]+\.h"'; for l in "$$@"; do up="$$up|$$l/"; done; \
	    if grep -nE "#include \"index/($$up)" index/$$layer/*.[ch]; then \
	        echo "index/$$layer/ may include only index/$$layer/ and the layers below it ($(INDEX_LAYERS), lowest first)"; bad=1; fi; \
	done; \
	if grep -nE '#include "index/[a-z_]+/' $(INDEX_FILES) query/*.[ch] server/*.[ch] tests/*.[ch] tests/*/*.c | \
	        grep -vE '#include "index/($(shell echo $(INDEX_LAYERS) | tr ' ' '|'))/'; then \
	    echo "index/ has no such layer"; bad=1; fi; \
	if grep -nE '#include[[:space:]]*<(event2/|jansson\.h)' $(INDEX_FILES) query/*.[ch]; then \
	    echo "libevent and jansson belong to server/"; bad=1; fi; \
	if grep -nE '(^|[^[:alnum:]_])(strcpy|strcat|sprintf|strtok|atoi|gets)[[:space:]]*\(' $(INDEX_FILES) query/*.[ch] server/*.[ch] tests/*.[ch] tests/*/*.c; then \
	    echo "banned function (see STYLE.md)"; bad=1; fi; \
	exit $$bad

run: all
	@if [ ! -e "$(DATA)/MANIFEST" ]; then ./xun index --data "$(DATA)" $(CORPUS); fi
	./xun serve --data "$(DATA)" --listen "$(LISTEN)"

clean:
	rm -rf build xun
