#include "archive/xml_safe.h"

#include <libxml/chvalid.h>
#include <libxml/encoding.h>
#include <libxml/parser.h>
#include <libxml/xmlwriter.h>
#include <libxml/parserInternals.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* An XML declaration is short; its encoding is looked for this far in. */
#define XML_DECL_MAX 256
#define UTF8_BOM "\xef\xbb\xbf"

/* SAX hooks: a DOCTYPE stops the parser where it starts, before any entity
 * declaration of its internal subset is read (whatever the encoding). */
static void on_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id, const xmlChar *system_id)
{
    (void)name;
    (void)external_id;
    (void)system_id;
    xmlParserCtxtPtr ctxt = ctx;
    *(bool *)ctxt->_private = true;
    xmlStopParser(ctxt);
}

static void on_entity(void *ctx, const xmlChar *name, int type, const xmlChar *public_id, const xmlChar *system_id,
                      xmlChar *content)
{
    (void)name;
    (void)type;
    (void)public_id;
    (void)system_id;
    (void)content;
    xmlParserCtxtPtr ctxt = ctx;
    *(bool *)ctxt->_private = true;
    xmlStopParser(ctxt);
}

static void quiet(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

/* The XML declaration's encoding="..." value, when text starts with one
 * in 8-bit characters (no UTF-16 byte order mark); "" otherwise. */
static void declared_encoding(const char *text, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    size_t n = len < XML_DECL_MAX ? len : XML_DECL_MAX;
    if (n >= 3 && memcmp(text, UTF8_BOM, 3) == 0) {
        text += 3;
        n -= 3;
    }
    if (n < 5 || memcmp(text, "<?xml", 5) != 0)
        return;
    const char *end = memmem(text, n, "?>", 2);
    const char *enc = end ? memmem(text, (size_t)(end - text), "encoding", 8) : NULL;
    if (!enc)
        return;
    const char *p = enc + 8;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '='))
        p++;
    if (p >= end || (*p != '"' && *p != '\''))
        return;
    const char *q = memchr(p + 1, *p, (size_t)(end - p - 1));
    if (q && (size_t)(q - p - 1) < cap)
        snprintf(out, cap, "%.*s", (int)(q - p - 1), p + 1);
}

/* Offset of the first byte that is not UTF-8, len when all are. */
static size_t utf8_bad_at(const char *text, size_t len)
{
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int n = (int)(len - i > 4 ? 4 : len - i);
        if (xmlGetUTF8Char(u + i, &n) < 0 || n <= 0)
            return i;
        i += (size_t)n;
    }
    return len;
}

/* XenCenter's OVF library declares encoding="utf-16" over UTF-8 bytes
 * without a byte order mark, which libxml2 refuses ("Document labelled
 * UTF-16 but has UTF-8 content"). Such a document is read as the UTF-8 it
 * is (*ignore_decl), if it is UTF-8; a real UTF-16 document starts with
 * its byte order mark or with "<\0", never with "<?xml" in single bytes. */
static int utf16_label(const char *text, size_t len, const char *what, bool *ignore_decl, struct sp_error *err)
{
    char enc[32];
    *ignore_decl = false;
    declared_encoding(text, len, enc, sizeof enc);
    if (strncasecmp(enc, "utf-16", 6) != 0 && strncasecmp(enc, "utf16", 5) != 0)
        return SP_OK;
    size_t bad = utf8_bad_at(text, len);
    if (bad < len)
        return sp_error_set(err, SP_EFORMAT,
                            "%s: declared %s but has no byte order mark, and is not UTF-8 either "
                            "(byte %zu is not)", what, enc, bad);
    *ignore_decl = true;
    return SP_OK;
}

int sp_xml_parse_safe(const char *text, size_t len, size_t max, const char *what, xmlDoc **out,
                      struct sp_error *err)
{
    *out = NULL;
    if (len > max)
        return sp_error_set(err, SP_ELIMIT, "%s: %zu bytes, more than the %zu a VM description may have", what, len,
                            max);
    if (len == 0)
        return sp_error_set(err, SP_EFORMAT, "%s: not well-formed XML (empty document)", what);
    bool ignore_decl = false;
    int rc = utf16_label(text, len, what, &ignore_decl, err);
    if (rc != SP_OK)
        return rc;
    xmlInitParser();
    /* xmlReadMemory's steps, with our SAX hooks on the context */
    xmlParserCtxtPtr ctxt = xmlCreateMemoryParserCtxt(text, (int)len);
    if (!ctxt)
        return sp_error_set(err, SP_ENOMEM, "%s: out of memory", what);
    bool doctype = false;
    ctxt->_private = &doctype;
    ctxt->sax->internalSubset = on_doctype;
    ctxt->sax->entityDecl = on_entity;
    /* NONET, and neither NOENT (substitute entities) nor DTDLOAD/DTDATTR;
     * NOERROR/NOWARNING: the library does not print, the message is ours. */
    xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA |
                                (ignore_decl ? XML_PARSE_IGNORE_ENC : 0));
    /* a conversion error of the input (a UTF-16 document with a broken
     * code unit) goes to libxml2's generic handler, which prints: muted for
     * the parse, the parse fails on its own */
    xmlGenericErrorFunc generic = xmlGenericError;
    void *generic_ctx = xmlGenericErrorContext;
    xmlSetGenericErrorFunc(NULL, quiet);
    xmlParseDocument(ctxt);
    xmlSetGenericErrorFunc(generic_ctx, generic);
    xmlDoc *doc = ctxt->myDoc;
    ctxt->myDoc = NULL;
    if (doctype || (doc && (doc->intSubset || doc->extSubset))) {
        rc = sp_error_set(err, SP_EFORMAT, "%s: has a document type declaration (DOCTYPE/ENTITY), which is refused",
                          what);
    } else if (!doc || !ctxt->wellFormed) {
        const xmlError *e = xmlCtxtGetLastError(ctxt);
        char msg[256] = "unknown error";
        if (e && e->message) {
            snprintf(msg, sizeof msg, "%s", e->message);
            size_t n = strlen(msg);
            while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
                msg[--n] = '\0';
        }
        rc = sp_error_set(err, SP_EFORMAT, "%s: not well-formed XML (line %d: %s)", what, e ? e->line : 0, msg);
    }
    xmlFreeParserCtxt(ctxt);
    if (rc != SP_OK) {
        if (doc)
            xmlFreeDoc(doc);
        return rc;
    }
    *out = doc;
    return SP_OK;
}

const char *sp_xml_clean(struct sp_xml_wr *c, const char *s)
{
    size_t n = strlen(s);
    if (n + 1 > c->scratch_len) {
        char *p = realloc(c->scratch, n + 1);
        if (!p) {
            c->bad = true;
            return "";
        }
        c->scratch = p;
        c->scratch_len = n + 1;
    }
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int len = (int)(n - i);
        int ch = xmlGetUTF8Char(u + i, &len);
        if (ch < 0 || len <= 0) {
            c->scratch[o++] = '?';
            i++;
            continue;
        }
        if (xmlIsCharQ(ch)) {
            memcpy(c->scratch + o, u + i, (size_t)len);
            o += (size_t)len;
        } else if (ch >= 0x20) {
            c->scratch[o++] = '?'; /* U+FFFE, U+FFFF */
        }
        i += (size_t)len;
    }
    c->scratch[o] = '\0';
    return c->scratch;
}

int sp_xml_wr_open(struct sp_xml_wr *c, const char *what, struct sp_error *err)
{
    memset(c, 0, sizeof *c);
    xmlInitParser();
    c->buf = xmlBufferCreate();
    if (!c->buf || !(c->w = xmlNewTextWriterMemory(c->buf, 0))) {
        if (c->buf)
            xmlBufferFree(c->buf);
        c->buf = NULL;
        return sp_error_set(err, SP_ENOMEM, "%s: out of memory", what);
    }
    return SP_OK;
}

int sp_xml_wr_finish(struct sp_xml_wr *c, const char *what, char **out, size_t *len, struct sp_error *err)
{
    SP_XML_W(c, xmlTextWriterEndDocument(c->w));
    xmlFreeTextWriter(c->w); /* flushes into buf */
    c->w = NULL;
    int rc = SP_OK;
    size_t n = (size_t)xmlBufferLength(c->buf);
    char *text = c->bad ? NULL : malloc(n + 1);
    if (c->bad)
        rc = sp_error_set(err, SP_ENOMEM, "%s: writing the XML failed (out of memory)", what);
    else if (!text)
        rc = sp_error_set(err, SP_ENOMEM, "%s: out of memory", what);
    if (text) {
        memcpy(text, xmlBufferContent(c->buf), n);
        text[n] = '\0';
        *out = text;
        *len = n;
    }
    xmlBufferFree(c->buf);
    c->buf = NULL;
    free(c->scratch);
    c->scratch = NULL;
    return rc;
}
