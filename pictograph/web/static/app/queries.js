// Every document the app sends. Each goes by its hash (api.js), so the server parses
// and validates it once, whichever of its processes answers.

const POST = `fragment FeedPost on Post {
  id
  caption
  createdAt
  status
  author { id username displayName }
  media(size: FULL) { url width height }
}`;

const PERSON = `fragment Person on User { id username displayName isPrivate }`;

export const SIGN_UP = `mutation SignUp($input: SignUpInput!) {
  signUp(input: $input) { token user { username } }
}`;

export const LOG_IN = `mutation LogIn($input: LogInInput!) {
  logIn(input: $input) { token user { username } }
}`;

export const LOG_OUT = `mutation LogOut { logOut }`;

export const VIEWER = `query Viewer {
  viewer { id username displayName bio isPrivate }
}`;

export const FEED = `query Feed($after: String) {
  feed(first: 10, after: $after) {
    edges { node { ...FeedPost } }
    pageInfo { hasNextPage endCursor }
  }
}
${POST}`;

export const FEED_UPDATES = `subscription FeedUpdates {
  feedUpdates { kind postId post { ...FeedPost } }
}
${POST}`;

export const POST_MEDIA = `query PostMedia($id: ID!) {
  post(id: $id) { id media(size: FULL) { url width height } }
}`;

export const PROFILE = `query Profile($username: String!, $after: String) {
  user(username: $username) {
    id username displayName bio isPrivate
    followerCount followingCount postCount
    viewerFollowStatus followsViewer
    posts(first: 24, after: $after) {
      edges { node { id caption status failureReason media(size: THUMBNAIL) { url width height } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}`;

const FOLLOW_PAYLOAD = `{ status user { id viewerFollowStatus followsViewer followerCount } }`;

export const FOLLOW = `mutation Follow($id: ID!) { follow(userId: $id) ${FOLLOW_PAYLOAD} }`;
export const UNFOLLOW = `mutation Unfollow($id: ID!) { unfollow(userId: $id) ${FOLLOW_PAYLOAD} }`;
export const APPROVE = `mutation Approve($id: ID!) {
  approveFollowRequest(userId: $id) ${FOLLOW_PAYLOAD}
}`;
export const REJECT = `mutation Reject($id: ID!) {
  rejectFollowRequest(userId: $id) ${FOLLOW_PAYLOAD}
}`;
export const REMOVE_FOLLOWER = `mutation RemoveFollower($id: ID!) {
  removeFollower(userId: $id) ${FOLLOW_PAYLOAD}
}`;

export const PEOPLE = `query People {
  followRequests(first: 50) { edges { node { ...Person } } }
  viewer { id followers(first: 100) { edges { node { ...Person } } } }
}
${PERSON}`;

export const UPDATE_PROFILE = `mutation UpdateProfile($input: UpdateProfileInput!) {
  updateProfile(input: $input) { id displayName bio isPrivate }
}`;

export const CREATE_UPLOAD = `mutation CreateUpload($input: CreateUploadInput!) {
  createUpload(input: $input) { uploadId url method headers { name value } }
}`;

export const CREATE_POST = `mutation CreatePost($input: CreatePostInput!) {
  createPost(input: $input) { id status }
}`;

export const POST_STATUS = `query PostStatus($id: ID!) {
  post(id: $id) { id status failureReason }
}`;
