-- The version of a tenant's providers and the credentials they name, moved
-- by every write of either in the same transaction, so a send can keep
-- them parsed and learn whether they changed from the read of the tenant's
-- settings it makes anyway (store/src/versioned_cache.rs).
ALTER TABLE tenants ADD COLUMN providers_version BIGINT NOT NULL DEFAULT 1;
