from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint

# Unique keys that include the owning user, the column these tables are distributed by
# on Citus (docs/scaling.md), in place of the single-column ones Citus cannot enforce.


class DropUniqueOutsideSqlite(ops.AlterField):
    """The column's UNIQUE dropped, on PostgreSQL. Tortoise 1.x drops one on SQLite by
    remaking the table, and the remade table lacks the old one's plain indexes; worse,
    with foreign keys on, its DROP TABLE deletes first, cascading: remaking `posts`
    deleted every media variant. So on SQLite the single-column UNIQUE stays: it is
    stricter than the per-owner key and, since an upload is its owner's alone, never
    refuses a row the per-owner key allows. An embedded database is never distributed."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is not None and state_editor.DIALECT == "sqlite":
            return
        await super().database_forward(app_label, old_state, new_state, state_editor)


class Migration(migrations.Migration):
    dependencies = [('models', '0007_redis_epochs')]

    initial = False

    operations = [
        DropUniqueOutsideSqlite(
            model_name='Post',
            name='upload_id',
            field=fields.BigIntField(),
        ),
        ops.AddConstraint(
            model_name='Post',
            constraint=UniqueConstraint(fields=('author', 'upload_id'), name=None),
        ),
        DropUniqueOutsideSqlite(
            model_name='Upload',
            name='object_key',
            field=fields.CharField(max_length=200),
        ),
        DropUniqueOutsideSqlite(
            model_name='Upload',
            name='post_id',
            field=fields.BigIntField(null=True),
        ),
        ops.AddConstraint(
            model_name='Upload',
            constraint=UniqueConstraint(fields=('owner', 'object_key'), name=None),
        ),
        ops.AddConstraint(
            model_name='Upload',
            constraint=UniqueConstraint(fields=('owner', 'post_id'), name=None),
        ),
    ]
