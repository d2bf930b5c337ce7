/*
 * test_spool_record.c - the spool record's trailer (src/spool_record.c): the CRC-32 of the
 * standard check string, the trailer's layout, and a line cut short, grown, changed in one
 * byte or with a broken trailer told from a good one.
 */
#include "ctest.h"
#include "spool_record.h"

static char line[100016];

/* line = {"a": followed by `arrays` nested arrays, closed; returns its length */
static size_t nested(size_t arrays) {
    size_t n = 0, k;
    memcpy(line, "{\"a\":", 5);
    n = 5;
    for (k = 0; k < arrays; k++) line[n++] = '[';
    for (k = 0; k < arrays; k++) line[n++] = ']';
    line[n++] = '}';
    return n;
}

/* line = json + its trailer; returns the line's length without its "\n" */
static size_t make(const char *json) {
    size_t n = strlen(json);
    memcpy(line, json, n);
    kl_spool_trailer(NULL, line + n, json, n);
    return n + KL_SPOOL_TRAILER - 1;
}

int main(void) {
    const char *json = "{\"type\":\"event-bulk-create\",\"n\":1}";
    size_t n, j = strlen(json);
    char trailer[KL_SPOOL_TRAILER + 1];

    CHECK(kl_spool_crc32(NULL, 0, "123456789", 9) == 0xcbf43926u);
    CHECK(kl_spool_crc32(NULL, kl_spool_crc32(NULL, 0, "1234", 4), "56789", 5) == 0xcbf43926u);
    CHECK(kl_spool_crc32(NULL, 0, "", 0) == 0);
    {
        /* eight bytes at a time gives the same CRC as one at a time, at every length and
         * alignment */
        static kl_spool_crc_tables tables;
        static char data[300];
        size_t off, len;
        int same = 1;
        kl_spool_crc_init(&tables);
        for (len = 0; len < sizeof data; len++) data[len] = (char)(len * 37 + 11);
        for (off = 0; off < 8; off++)
            for (len = 0; len + off <= sizeof data; len += 7)
                if (kl_spool_crc32(&tables, 0, data + off, len) != kl_spool_crc32(NULL, 0, data + off, len)) same = 0;
        CHECK(same);
        CHECK(kl_spool_crc32(&tables, 0, "123456789", 9) == 0xcbf43926u);
        CHECK_INT(kl_spool_check(&tables, "\t0000000000000000", 17), 0);
    }

    kl_spool_trailer(NULL, trailer, "123456789", 9);
    trailer[KL_SPOOL_TRAILER] = '\0';
    CHECK_STR(trailer, "\t00000009cbf43926\n");

    n = make(json);
    CHECK_INT(kl_spool_check(NULL, line, n), (long)j);
    CHECK_INT(kl_spool_check(NULL, line, 0), -1);
    /* cut short: the JSON text loses its end, the trailer stays */
    memmove(line + 10, line + j, KL_SPOOL_TRAILER - 1);
    CHECK_INT(kl_spool_check(NULL, line, 10 + KL_SPOOL_TRAILER - 1), -1);
    /* a byte of the JSON text changed */
    n = make(json);
    line[5] ^= 1;
    CHECK_INT(kl_spool_check(NULL, line, n), -1);
    /* the trailer: not hex, upper case, no tab, cut */
    n = make(json);
    line[n - 1] = 'g';
    CHECK_INT(kl_spool_check(NULL, line, n), -1);
    n = make("{\"n\":12345678}"); /* a CRC-32 with no letter is rare: look for one */
    {
        size_t k, upper = 0;
        for (k = n - 16; k < n; k++)
            if (line[k] >= 'a' && line[k] <= 'f') {
                line[k] = (char)(line[k] - 'a' + 'A');
                upper = 1;
                break;
            }
        if (upper) CHECK_INT(kl_spool_check(NULL, line, n), -1);
    }
    n = make(json);
    line[j] = ' ';
    CHECK_INT(kl_spool_check(NULL, line, n), -1);
    n = make(json);
    CHECK_INT(kl_spool_check(NULL, line, n - 1), -1);
    CHECK_INT(kl_spool_check(NULL, "\t0000000000000000", 17), 0); /* an empty record is one */
    CHECK_INT(kl_spool_check(NULL, "0000000000000000", 16), -1);
    /* the length must match: the same text with one byte more before the trailer */
    n = make(json);
    memmove(line + 1, line, n);
    line[0] = ' ';
    CHECK_INT(kl_spool_check(NULL, line, n + 1), -1);

    /* a record to send: its trailer matches and its text is one JSON object */
    n = make(json);
    CHECK_INT(kl_spool_record(NULL, line, n), (long)j);
    CHECK_INT(kl_spool_record(NULL, "\t0000000000000000", 17), -1); /* empty: no object */
    {
        static const char *good[] = {
            "{}",
            " { } ",
            "{\"a\":[]}",
            "{\"a\":[1,-0,0.5,-1.25e+10,2E-3,1e5,true,false,null,\"\"]}",
            "{\"s\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"}",
            "{\"u\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"}",
            "{\"a\":{\"b\":{\"c\":[[{}]]}}}",
            "{\t\"a\" :\r 1 , \"b\":2}",
        };
        static const char *bad[] = {
            "",
            "not json",
            "[1,2]",
            "42",
            "\"s\"",
            "null",
            "{",
            "}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\":1 \"b\":2}",
            "{a:1}",
            "{'a':1}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":-}",
            "{\"a\":1e}",
            "{\"a\":+1}",
            "{\"a\":NaN}",
            "{\"a\":Infinity}",
            "{\"a\":tru}",
            "{\"a\":nul}",
            "{\"a\":[1,]}",
            "{\"a\":[1 2]}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\\u12g4\"}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":\"\x01\"}",
            "{\"a\":\"open}",
            "{\"a\":\"\xff\"}",
            "{\"a\":\"\xc0\x80\"}",
            "{\"a\":\"\xe0\x80\x80\"}",
            "{\"a\":\"\xed\xa0\x80\"}",
            "{\"a\":\"\xf4\x90\x80\x80\"}",
            "{\"a\":\"\xc3\"}",
            "{\"a\":\"\xe2\x82\"}",
            "{} {}",
            "{}x",
        };
        size_t k;
        for (k = 0; k < sizeof good / sizeof *good; k++) CHECK(kl_spool_json_object(good[k], strlen(good[k])));
        for (k = 0; k < sizeof bad / sizeof *bad; k++) CHECK(!kl_spool_json_object(bad[k], strlen(bad[k])));
        CHECK(!kl_spool_json_object("{\"a\":1}\x00", 8));       /* the zero byte counts */
        CHECK(!kl_spool_json_object("{\"a\":\"\\\x00\"}", 10)); /* a backslash then a zero byte */
        /* nesting: the object and KL_SPOOL_JSON_DEPTH - 1 arrays in it are one, one more is not */
        n = nested(KL_SPOOL_JSON_DEPTH - 1);
        CHECK(kl_spool_json_object(line, n));
        n = nested(KL_SPOOL_JSON_DEPTH);
        CHECK(!kl_spool_json_object(line, n));
        n = nested(100000 / 2); /* no deeper than the limit, whatever the text */
        CHECK(!kl_spool_json_object(line, n));
        /* a record whose trailer matches but whose text is no object */
        n = make("not json");
        CHECK_INT(kl_spool_check(NULL, line, n), 8);
        CHECK_INT(kl_spool_record(NULL, line, n), -1);
    }
    CTEST_END();
}
