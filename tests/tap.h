/* TAP output for meson test (see tap.c). */
#ifndef LKS_TESTS_TAP_H
#define LKS_TESTS_TAP_H

/* With CMOCKA_MESSAGE_OUTPUT=TAP, puts a filter in front of stdout; call
 * it first in main. */
void tap_stdout(void);

#endif
