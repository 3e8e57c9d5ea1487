/*
 * test_state.c: the resume state file of the agent and the module
 * (egress_state.c): parse, format, load and save, and the former JSON form.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "egress_state.h"

#define HASH "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"

static void test_parse_lines(void **state)
{
    const char text[] = "# written by egress\n"
                        "session = s1.L.3\n"
                        "\n"
                        "resume =egr_abc-DEF_123\r\n"
                        "  ticket_sha256\t=\t" HASH "  \n"
                        "ended = 4003\n"
                        "future_key = anything at all\n";
    egress_state_t st;
    egress_error_t err;

    (void) state;
    assert_int_equal(egress_state_parse(&st, text, strlen(text), &err), 0);
    assert_string_equal(st.session, "s1.L.3");
    assert_string_equal(st.resume, "egr_abc-DEF_123");
    assert_int_equal(st.has_ticket_sha256, 1);
    assert_int_equal(st.ticket_sha256[0], 0x00);
    assert_int_equal(st.ticket_sha256[1], 0x11);
    assert_int_equal(st.ticket_sha256[31], 0xff);
    assert_int_equal(st.ended, 4003);
}

/* the agent's files as it wrote them before: an empty resume is "none" */
static void test_parse_agent_legacy(void **state)
{
    const char text[] = "session = abc\nresume = \n";
    egress_state_t st;
    egress_error_t err;

    (void) state;
    assert_int_equal(egress_state_parse(&st, text, strlen(text), &err), 0);
    assert_string_equal(st.session, "abc");
    assert_string_equal(st.resume, "");
    assert_int_equal(egress_state_parse(&st, "", 0, &err), 0);
    assert_string_equal(st.session, "");
    assert_int_equal(st.has_ticket_sha256, 0);
    assert_int_equal(st.ended, 0);
}

/* the module's files as it wrote them before */
static void test_parse_module_json(void **state)
{
    const char text[] =
        "{\"resume\": \"egr_xyz\", \"ticket_sha256\": \"" HASH "\", \"ended\": 410}\n";
    const char bad[] = "{\"resume\": \"egr xyz\"}";
    const char bad_ended[] = "{\"ended\": \"410\"}";
    egress_state_t st;
    egress_error_t err;

    (void) state;
    assert_int_equal(egress_state_parse(&st, text, strlen(text), &err), 0);
    assert_string_equal(st.resume, "egr_xyz");
    assert_int_equal(st.has_ticket_sha256, 1);
    assert_int_equal(st.ticket_sha256[16], 0x00);
    assert_int_equal(st.ended, 410);
    assert_int_equal(egress_state_parse(&st, "{\"resume\": \"\"}", 14, &err), 0);
    assert_string_equal(st.resume, "");
    assert_int_equal(egress_state_parse(&st, bad, strlen(bad), &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_VALUE);
    assert_string_equal(st.resume, "");
    assert_int_equal(egress_state_parse(&st, bad_ended, strlen(bad_ended), &err), -1);
    assert_int_equal(egress_state_parse(&st, "{\"resume\": ", 11, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_JSON);
    assert_int_equal(egress_state_parse(&st, " [1]", 4, &err), -1);
}

static void bad(const char *text, egress_err_e code, const char *needle)
{
    egress_state_t st;
    egress_error_t err;

    if (egress_state_parse(&st, text, strlen(text), &err) != -1)
        fail_msg("accepted: %s", text);
    assert_int_equal(err.code, code);
    if (!strstr(err.message, needle))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, needle);
    /* nothing half-read is left behind */
    assert_string_equal(st.resume, "");
    assert_string_equal(st.session, "");
}

static void test_parse_bad(void **state)
{
    char big[EGRESS_STATE_MAX + 2];

    (void) state;
    bad("resume = egr_a\nno equals sign\n", EGRESS_ERR_VALUE, "line 2");
    bad("resume = egr a\n", EGRESS_ERR_VALUE, "line 1");
    bad("resume = egr\"a\n", EGRESS_ERR_VALUE, "line 1");
    bad("resume = egr_a\nresume = egr_b\n", EGRESS_ERR_VALUE, "line 2");
    bad("= egr_a\n", EGRESS_ERR_VALUE, "line 1");
    bad("Resume = egr_a\n", EGRESS_ERR_VALUE, "line 1");
    bad("session = a b\n", EGRESS_ERR_VALUE, "line 1");
    bad("session = \x7f\n", EGRESS_ERR_VALUE, "line 1");
    bad("ticket_sha256 = 0011\n", EGRESS_ERR_VALUE, "line 1");
    bad("ticket_sha256 = " HASH "0\n", EGRESS_ERR_VALUE, "line 1");
    bad("ticket_sha256 = 0g112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        EGRESS_ERR_VALUE, "line 1");
    bad("ended = 41\n", EGRESS_ERR_VALUE, "line 1");
    bad("ended = 41000\n", EGRESS_ERR_VALUE, "line 1");
    bad("ended = -410\n", EGRESS_ERR_VALUE, "line 1");
    bad("ended = 0410\n", EGRESS_ERR_VALUE, "line 1");
    memset(big, '#', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    bad(big, EGRESS_ERR_TOO_LARGE, "longer than");
    {
        egress_state_t st;
        egress_error_t err;
        assert_int_equal(egress_state_parse(&st, "resume = a\0b\n", 13, &err), -1);
        assert_non_null(strstr(err.message, "NUL"));
    }
    {
        /* a resume secret longer than any the coordinator sends */
        char text[400];
        memset(text, 'a', sizeof(text) - 1);
        text[sizeof(text) - 1] = '\0';
        memcpy(text, "resume = ", 9);
        bad(text, EGRESS_ERR_VALUE, "line 1");
    }
}

static void test_format_round_trip(void **state)
{
    egress_state_t st, back;
    egress_error_t err;
    char out[EGRESS_STATE_MAX];
    int n;

    (void) state;
    memset(&st, 0, sizeof(st));
    n = egress_state_format(&st, out, sizeof(out), &err);
    assert_int_equal(n, 0);
    assert_string_equal(out, "");

    snprintf(st.resume, sizeof(st.resume), "egr_%s", "Zz09-_");
    snprintf(st.session, sizeof(st.session), "sess.1");
    for (int i = 0; i < EGRESS_SHA256_LEN; i++)
        st.ticket_sha256[i] = (unsigned char) (i * 7);
    st.has_ticket_sha256 = 1;
    st.ended = 404;
    n = egress_state_format(&st, out, sizeof(out), &err);
    assert_true(n > 0);
    assert_non_null(strstr(out, "session = sess.1\n"));
    assert_non_null(strstr(out, "resume = egr_Zz09-_\n"));
    assert_non_null(strstr(out, "ticket_sha256 = 00070e15"));
    assert_non_null(strstr(out, "ended = 404\n"));
    assert_int_equal(egress_state_parse(&back, out, (size_t) n, &err), 0);
    assert_memory_equal(&st, &back, sizeof(st));

    /* too small an output buffer is an error, and the buffer is wiped */
    assert_int_equal(egress_state_format(&st, out, 20, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_NO_SPACE);
    assert_int_equal(out[0], '\0');
}

static void test_secret_ok(void **state)
{
    (void) state;
    assert_true(egress_state_secret_ok("egt_AZaz09-_.~+/=", 17, 512));
    assert_false(egress_state_secret_ok("", 0, 512));
    assert_false(egress_state_secret_ok("abc", 3, 2));
    assert_false(egress_state_secret_ok("a b", 3, 512));
    assert_false(egress_state_secret_ok("a\nb", 3, 512));
    assert_false(egress_state_secret_ok("a\"b", 3, 512));
}

static void test_load_save(void **state)
{
    char dir[] = "/tmp/egress-test-state-XXXXXX", path[128], tmpname[160];
    egress_state_t st, back;
    egress_error_t err;
    struct stat sb;
    FILE *f;

    (void) state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/client.state", dir);

    /* no file: nothing, and no error */
    assert_int_equal(egress_state_load(&st, path, &err), 0);
    assert_string_equal(st.resume, "");

    memset(&st, 0, sizeof(st));
    snprintf(st.resume, sizeof(st.resume), "egr_saved");
    st.ended = 4004;
    assert_int_equal(egress_state_save(&st, path, &err), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(egress_state_load(&back, path, &err), 1);
    assert_string_equal(back.resume, "egr_saved");
    assert_int_equal(back.ended, 4004);
    /* no temporary file is left behind */
    snprintf(tmpname, sizeof(tmpname), "%s.tmp.%ld", path, (long) getpid());
    assert_int_not_equal(access(tmpname, F_OK), 0);

    /* a malformed file is an error and leaves st empty */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("resume = egr_x\ngarbage\n", f);
    fclose(f);
    assert_int_equal(egress_state_load(&back, path, &err), -1);
    assert_string_equal(back.resume, "");

    /* a file above the bound is refused, not cut */
    f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < EGRESS_STATE_MAX; i++)
        fputc('#', f);
    fputs("\nresume = egr_x\n", f);
    fclose(f);
    assert_int_equal(egress_state_load(&back, path, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_TOO_LARGE);

    /* something planted at the temporary name is replaced, never written
     * through: a symbolic link's target is not created, a 0666 file is not
     * reused, and the state file comes out 0600 */
    {
        char target[192];
        struct stat ps;
        int fd;

        snprintf(target, sizeof(target), "%s/planted-target", dir);
        assert_int_equal(symlink(target, tmpname), 0);
        assert_int_equal(egress_state_save(&st, path, &err), 0);
        assert_int_not_equal(access(target, F_OK), 0);
        fd = open(tmpname, O_WRONLY | O_CREAT | O_EXCL, 0666);
        assert_true(fd >= 0);
        assert_int_equal(fchmod(fd, 0666), 0);
        close(fd);
        assert_int_equal(egress_state_save(&st, path, &err), 0);
        assert_int_equal(lstat(path, &ps), 0);
        assert_true(S_ISREG(ps.st_mode));
        assert_int_equal(ps.st_mode & 0777, 0600);
        assert_int_not_equal(access(tmpname, F_OK), 0);
    }

    /* a directory that does not exist */
    snprintf(tmpname, sizeof(tmpname), "%s/missing/client.state", dir);
    assert_int_equal(egress_state_save(&st, tmpname, &err), -1);
    assert_non_null(strstr(err.message, "cannot create"));

    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lines),       cmocka_unit_test(test_parse_agent_legacy),
        cmocka_unit_test(test_parse_module_json), cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_format_round_trip), cmocka_unit_test(test_secret_ok),
        cmocka_unit_test(test_load_save),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
