/* fuzz-config.c: a libFuzzer target for the YAML run configuration
 * (agn_config_parse, on libyaml), as agn-train reads a config file and
 * agn-eval a checkpoint's.  Not part of `make check`.  Build and run from
 * the top of the source tree:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ilibcommon -I build/fuzz \
 *       tests/fuzz/fuzz-config.c libcommon/runconfig.c libcommon/util.c \
 *       -lyaml -lm -o fuzz-config
 *   mkdir -p corpus && cp examples/tiny.yaml RUN/config.yaml corpus/
 *   ./fuzz-config -max_total_time=300 -max_len=2048 corpus
 *
 * (-I names a configured build directory, for config.h.)  A config that
 * parses either passes agn_config_check or fails it with a message naming
 * the file; either way, the resolved config agn-train writes back
 * (agn_config_to_string) must parse again, to the same config: a run's
 * config.yaml is fed back to agn-train as it is.  A config that does not
 * parse must say why, naming the file. */
#define _GNU_SOURCE
#include "config.h"

#include "runconfig.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_error(const char *name)
{
    const char *m = agn_errmsg();
    if (!m || strncmp(m, name, strlen(name)) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agn_config c;
    agn_config_defaults(&c);
    if (agn_config_parse(&c, (const char *)data, size, "fuzz.yaml") != 0) {
        check_error("fuzz.yaml");
        agn_config_free(&c);
        return 0;
    }
    if (agn_config_check(&c) != 0) check_error("fuzz.yaml");
    char *text = agn_config_to_string(&c);
    if (!text) abort();
    agn_config c2;
    agn_config_defaults(&c2);
    if (agn_config_parse(&c2, text, strlen(text), "again.yaml") != 0) {
        fprintf(stderr, "written config does not parse: %s\n%s", agn_errmsg(), text);
        abort();
    }
    char *text2 = agn_config_to_string(&c2);
    if (!text2 || strcmp(text, text2) != 0) {
        fprintf(stderr, "written config reads back otherwise:\n%s---\n%s", text, text2);
        abort();
    }
    free(text2);
    free(text);
    agn_config_free(&c2);
    agn_config_free(&c);
    return 0;
}
