/*
 * test_revision.c - the revision and credential checks (pure functions).
 */
#include "ctest.h"
#include "klaviyo.h"

int main(void) {
    CHECK(kl_revision_valid("2026-07-15"));
    CHECK(kl_revision_valid("2024-10-15.pre"));
    CHECK(kl_revision_valid("2024-02-29")); /* leap year */
    CHECK(kl_revision_valid("2000-02-29")); /* divisible by 400 */
    CHECK(kl_revision_valid("2023-12-31"));
    CHECK(kl_revision_valid("2024-10-15.pre_release-2"));
    CHECK(!kl_revision_valid("2023-02-29")); /* not a leap year */
    CHECK(!kl_revision_valid("1900-02-29")); /* divisible by 100 */
    CHECK(!kl_revision_valid("2026-04-31"));
    CHECK(!kl_revision_valid("2026-13-01"));
    CHECK(!kl_revision_valid("2026-00-10"));
    CHECK(!kl_revision_valid("2026-01-00"));
    CHECK(!kl_revision_valid("2026-7-15"));
    CHECK(!kl_revision_valid("2026/07/15"));
    CHECK(!kl_revision_valid("2026-07-15."));
    CHECK(!kl_revision_valid("2026-07-15.pre.x"));
    CHECK(!kl_revision_valid("2026-07-15 "));
    CHECK(!kl_revision_valid("2026-07-15pre"));
    CHECK(!kl_revision_valid("2026-07-15.p re"));
    CHECK(!kl_revision_valid("2026-07-15.\r\n"));
    CHECK(!kl_revision_valid("20260715"));
    CHECK(!kl_revision_valid(""));
    CHECK(!kl_revision_valid(NULL));
    CHECK(!kl_revision_valid("2026-07-15.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));

    CHECK(kl_credential_valid("pk_abc123"));
    CHECK(kl_credential_valid("AbC123"));
    CHECK(!kl_credential_valid(""));
    CHECK(!kl_credential_valid(NULL));
    CHECK(!kl_credential_valid("pk abc"));
    CHECK(!kl_credential_valid("pk_abc\r"));
    CHECK(!kl_credential_valid("pk_abc\n"));
    CHECK(!kl_credential_valid("pk_\tabc"));
    CHECK(!kl_credential_valid("pk_\x7f"));
    CHECK(!kl_credential_valid("\x1b[31m"));
    CTEST_END();
}
