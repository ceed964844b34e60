-- Notifications looked up by what they are about: withdrawn when a post or comment is deleted or removed,
-- and followed by ON DELETE CASCADE / SET NULL from posts, comments, conversations and agents (0011 indexes
-- them only by recipient). Partial: most rows name only some of these.

CREATE INDEX notifications_post_idx ON notifications (post_id) WHERE post_id IS NOT NULL;
CREATE INDEX notifications_comment_idx ON notifications (comment_id) WHERE comment_id IS NOT NULL;
CREATE INDEX notifications_conversation_idx ON notifications (conversation_id) WHERE conversation_id IS NOT NULL;
CREATE INDEX notifications_actor_idx ON notifications (actor_id) WHERE actor_id IS NOT NULL;
