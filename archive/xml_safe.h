/* What the XML modules (ova.xml, OVF) share. Reading untrusted XML with
 * libxml2: no network, no entity substitution, no DTD loading, and a
 * document type declaration refused outright (billion laughs and XXE come
 * in through it); the library prints nothing, the message is ours.
 * Writing: the writer's state and text cleaned to what XML can carry. */
#ifndef SP_XML_SAFE_H
#define SP_XML_SAFE_H

#include <libxml/tree.h>
#include <libxml/xmlwriter.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

/* At most max bytes. On success *doc is the tree (xmlFreeDoc it). Errors
 * are SP_EFORMAT/SP_ELIMIT with what (e.g. "ovf") before the message. */
int sp_xml_parse_safe(const char *text, size_t len, size_t max, const char *what, xmlDoc **doc,
                      struct sp_error *err);

/* What an XML writer (ova.xml, OVF) carries: libxml2's writer, whether a
 * call failed (out of memory), and scratch space for cleaned text. */
struct sp_xml_wr {
    xmlTextWriterPtr w;
    xmlBufferPtr buf;   /* where w writes */
    bool bad;
    char *scratch;
    size_t scratch_len;
};

/* A writer into memory; what names the document in errors ("ovf"). */
int sp_xml_wr_open(struct sp_xml_wr *c, const char *what, struct sp_error *err);
/* Ends the document and hands its text out (malloc'd, NUL-terminated);
 * frees the writer whether it succeeds or not. */
int sp_xml_wr_finish(struct sp_xml_wr *c, const char *what, char **out, size_t *len, struct sp_error *err);

/* Runs a libxml2 writer call unless one failed already; a failure sticks. */
#define SP_XML_W(c, call)                  \
    do {                                   \
        if (!(c)->bad && (call) < 0)       \
            (c)->bad = true;               \
    } while (0)

/* Text as XML 1.0 can carry it: control characters other than TAB, LF and
 * CR are dropped (XAPI drops them too), invalid UTF-8 bytes become '?'.
 * The result lives in c->scratch until the next call. */
const char *sp_xml_clean(struct sp_xml_wr *c, const char *s);

#endif
