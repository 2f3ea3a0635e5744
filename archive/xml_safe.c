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

int sp_xml_parse_safe(const char *text, size_t len, size_t max, const char *what, xmlDoc **out,
                      struct sp_error *err)
{
    *out = NULL;
    if (len > max)
        return sp_error_set(err, SP_ELIMIT, "%s: %zu bytes, more than the %zu a VM description may have", what, len,
                            max);
    if (len == 0)
        return sp_error_set(err, SP_EFORMAT, "%s: not well-formed XML (empty document)", what);
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
    xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
    xmlParseDocument(ctxt);
    xmlDoc *doc = ctxt->myDoc;
    ctxt->myDoc = NULL;
    int rc = SP_OK;
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
