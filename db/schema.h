// The catalog schema as an ordered list of migrations.
//
// Migration N takes a catalog from user_version N-1 to N. Migrations are append-only:
// once released, a migration's SQL never changes; later changes are new migrations.

#ifndef REEL_DB_SCHEMA_H_
#define REEL_DB_SCHEMA_H_

#include <vector>

namespace reel {

struct Migration {
  int version;
  const char* description;
  const char* sql;
};

// All migrations, in version order (1, 2, ...).
const std::vector<Migration>& CatalogMigrations();

// PRAGMA application_id of reel catalogs ("reel" in ASCII).
constexpr int kCatalogApplicationId = 0x7265656c;

}  // namespace reel

#endif  // REEL_DB_SCHEMA_H_
