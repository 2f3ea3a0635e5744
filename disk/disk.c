#include "disk/disk.h"

int sp_disk_next_extent(struct sp_disk *d, uint64_t off, struct sp_extent *ext, struct sp_error *err)
{
    if (off >= d->size)
        return sp_error_set(err, SP_EINVAL, "%s: offset %llu is past the end of the disk",
                            d->path, (unsigned long long)off);
    return d->ops->next_extent(d, off, ext, err);
}

int sp_disk_read(struct sp_disk *d, uint64_t off, void *buf, size_t len, struct sp_error *err)
{
    if (off > d->size || len > d->size - off)
        return sp_error_set(err, SP_EINVAL, "%s: read of %zu bytes at %llu is past the end of the disk",
                            d->path, len, (unsigned long long)off);
    if (len == 0)
        return SP_OK;
    return d->ops->read(d, off, buf, len, err);
}

int sp_disk_write(struct sp_disk *d, uint64_t off, const void *buf, size_t len, struct sp_error *err)
{
    if (!d->ops->write)
        return sp_error_set(err, SP_EUNSUPPORTED, "%s: this image cannot be written", d->path);
    if (off > d->size || len > d->size - off)
        return sp_error_set(err, SP_EINVAL,
                            "%s: write of %zu bytes at offset %llu is past the virtual size (%llu)",
                            d->path, len, (unsigned long long)off, (unsigned long long)d->size);
    if (len == 0)
        return SP_OK;
    return d->ops->write(d, off, buf, len, err);
}

int sp_disk_flush(struct sp_disk *d, struct sp_error *err)
{
    return d->ops->flush ? d->ops->flush(d, err) : SP_OK;
}

void sp_disk_close(struct sp_disk *d)
{
    if (d)
        d->ops->close(d);
}
