#include "base/notes.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool seen(const struct sp_notes *notes, const char *s)
{
    for (int i = 0; i < notes->n; i++)
        if (strcmp(notes->items[i], s) == 0)
            return true;
    return false;
}

void sp_note(struct sp_notes *notes, const char *fmt, ...)
{
    if (!notes)
        return;
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        notes->dropped++;
        return;
    }
    if (seen(notes, s)) {
        free(s);
        return;
    }
    char **items = notes->n < SP_NOTES_MAX ? realloc(notes->items, sizeof *items * (size_t)(notes->n + 1)) : NULL;
    if (!items) {
        free(s);
        notes->dropped++;
        return;
    }
    items[notes->n++] = s;
    notes->items = items;
}

void sp_notes_free(struct sp_notes *notes)
{
    if (!notes)
        return;
    for (int i = 0; i < notes->n; i++)
        free(notes->items[i]);
    free(notes->items);
    memset(notes, 0, sizeof *notes);
}
