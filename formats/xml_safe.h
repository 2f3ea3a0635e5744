/* Parsing untrusted XML (ova.xml, OVF descriptors) with libxml2: no
 * network, no entity substitution, no DTD loading, and a document type
 * declaration refused outright (billion laughs and XXE come in through it).
 * The library prints nothing; the message is ours. */
#ifndef SP_XML_SAFE_H
#define SP_XML_SAFE_H

#include <libxml/tree.h>
#include <stddef.h>

#include "formats/error.h"

/* At most max bytes. On success *doc is the tree (xmlFreeDoc it). Errors
 * are SP_EFORMAT/SP_ELIMIT with what (e.g. "ovf") before the message. */
int sp_xml_parse_safe(const char *text, size_t len, size_t max, const char *what, xmlDoc **doc,
                      struct sp_error *err);

#endif
