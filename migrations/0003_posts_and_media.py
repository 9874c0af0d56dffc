from tortoise import migrations
from tortoise.migrations import operations as ops
from pictograph.ids import new_id
from pictograph.models.posts import PostStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_follow_graph')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Post',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id, unique=True, db_index=True)),
                ('author', fields.ForeignKeyField('models.User', source_field='author_id', db_constraint=True, to_field='id', related_name='posts', on_delete=OnDelete.CASCADE)),
                ('caption', fields.TextField(default='', unique=False)),
                ('status', fields.CharEnumField(default=PostStatus.PROCESSING, description='PROCESSING: PROCESSING\nREADY: READY\nFAILED: FAILED', enum_type=PostStatus, max_length=10)),
                ('failure_reason', fields.CharField(null=True, max_length=200)),
                ('upload_id', fields.BigIntField(unique=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'posts', 'app': 'models', 'indexes': [Index(fields=['author_id', 'status', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MediaVariant',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('post', fields.ForeignKeyField('models.Post', source_field='post_id', db_constraint=True, to_field='id', related_name='variants', on_delete=OnDelete.CASCADE)),
                ('size', fields.CharField(max_length=10)),
                ('object_key', fields.CharField(max_length=200)),
                ('width', fields.IntField()),
                ('height', fields.IntField()),
                ('content_type', fields.CharField(max_length=32)),
                ('byte_size', fields.IntField()),
                ('etag', fields.CharField(max_length=64)),
            ],
            options={'table': 'media_variants', 'app': 'models', 'unique_together': (('post', 'size'),), 'pk_attr': 'id', 'table_description': "One served rendition of a post's photo (THUMBNAIL or FULL)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StorageGarbage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('object_key', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'storage_garbage', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An object to delete from storage. Written in the transaction that makes the'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Upload',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id, unique=True, db_index=True)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', db_constraint=True, to_field='id', related_name='uploads', on_delete=OnDelete.CASCADE)),
                ('content_type', fields.CharField(max_length=32)),
                ('byte_size', fields.BigIntField()),
                ('object_key', fields.CharField(unique=True, max_length=200)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('post_id', fields.BigIntField(null=True, unique=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'uploads', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A ticket to put one original into storage, and what happened to it.'},
            bases=['Model'],
        ),
    ]
